"""pytest scaffolding for the gst-facenet Python tests.

Run through `make test` (or `make test-python`), which builds the plugin, generates the fixtures
and sets GST_PLUGIN_PATH. Missing prerequisites make the run FAIL with a message saying what to
do; nothing is skipped:

* PyGObject / GStreamer typelibs (gi, Gst, GstVideo, GstApp) -> session aborts (exit 1);
* fixture models / reference data                            -> session aborts (exit 1);
* the facenet plugin (GST_PLUGIN_PATH/libgstfacenet.so)       -> every test that uses the
  `facenet_plugin` fixture fails.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

FIXTURES_DIR = Path(os.environ.get("GST_FACENET_FIXTURES_DIR", ROOT / "models" / "fixtures" / "out"))
REFERENCE_DIR = Path(os.environ.get("GST_FACENET_REFERENCE_DIR", ROOT / "tests" / "data" / "generated"))
REFERENCE_JSON = REFERENCE_DIR / "reference.json"
PLUGIN_FILE = "libgstfacenet.so"
ELEMENT = "facenet"
META_NAME = "FaceNetEmbeddingMeta"

HINT = "run `make test` (or `make setup fixtures build`) from the repository root"


def _abort(msg: str) -> None:
    pytest.exit(f"\n\nERROR: {msg}\n", returncode=1)


def _import_gst():
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstVideo", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp, GstVideo  # noqa: F401
    except (ImportError, ValueError) as e:
        _abort(f"PyGObject/GStreamer typelibs unavailable ({e}).\n"
               f"  python: {sys.executable}\n"
               "  Needs apt packages python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 "
               "(scripts/setup-apt.sh) and a venv made by /usr/bin/python3 -m venv "
               "--system-site-packages (scripts/setup-venv.sh); " + HINT)
    Gst.init(None)
    return Gst


def pytest_sessionstart(session):
    _import_gst()
    missing = [p for p in (FIXTURES_DIR / "facenet_nchw.onnx", REFERENCE_JSON) if not p.exists()]
    if missing:
        _abort("generated test data missing: " + ", ".join(map(str, missing)) +
               "\n  create it with `make fixtures`")


@pytest.fixture(scope="session")
def Gst():
    return _import_gst()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE_DIR


def load_reference() -> dict:
    with open(REFERENCE_JSON) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def reference() -> dict:
    return load_reference()


def reference_cases() -> list[dict]:
    """Cases of reference.json, for parametrize (empty list if the data is missing: the session
    then aborts in pytest_sessionstart anyway)."""
    try:
        return load_reference()["cases"]
    except OSError:
        return []


@pytest.fixture(scope="session")
def facenet_plugin(Gst):
    """The facenet element factory from GST_PLUGIN_PATH; fails (not skips) when unavailable."""
    plugin_path = os.environ.get("GST_PLUGIN_PATH", "")
    dirs = [Path(d) for d in plugin_path.split(os.pathsep) if d]
    if not dirs:
        pytest.fail(f"GST_PLUGIN_PATH is not set; it must point at the directory holding {PLUGIN_FILE} "
                    f"(target/release); {HINT}", pytrace=False)
    candidates = [d / PLUGIN_FILE for d in dirs if (d / PLUGIN_FILE).exists()]
    if not candidates:
        pytest.fail(f"{PLUGIN_FILE} not found in GST_PLUGIN_PATH={plugin_path}; build it with "
                    f"`make build` ({HINT})", pytrace=False)
    factory = Gst.ElementFactory.find(ELEMENT)
    if factory is None:
        # Ask GStreamer why: load_file raises with the dlopen/registration error.
        reason = "plugin loaded but registers no element named 'facenet'"
        try:
            Gst.Plugin.load_file(str(candidates[0]))
        except Exception as e:  # GLib.Error
            reason = str(e)
        pytest.fail(f"GStreamer element '{ELEMENT}' unavailable from {candidates[0]}: {reason}\n"
                    f"  debug with: GST_PLUGIN_PATH={plugin_path} GST_DEBUG=GST_PLUGIN_LOADING:5 "
                    f"gst-inspect-1.0 {ELEMENT}", pytrace=False)
    return factory


def structure_float_list(structure, field: str) -> list[float]:
    """Read a GstValueArray (or GstValueList) of floats from a Gst.Structure.

    Without gst-python's overrides (apt python3-gst-1.0) PyGObject cannot convert GstValueArray
    ('unknown type GstValueArray') in get_value(); Gst.Structure.get_array() converts it into a
    GObject.ValueArray, which works everywhere.
    """
    if not structure.has_field(field):
        raise KeyError(f"structure {structure.get_name()} has no field {field!r}: {structure.to_string()}")
    getter = structure.get_array if structure.get_field_type(field).name == "GstValueArray" else structure.get_list
    ok, arr = getter(field)
    if ok and arr is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return [float(arr.get_nth(i)) for i in range(arr.n_values)]
    value = structure.get_value(field)  # works with gst-python overrides
    return [float(v) for v in value]

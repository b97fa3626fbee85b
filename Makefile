# gst-facenet developer entry points. GNU make; every target is idempotent.
#
#   make setup      Rust check, apt packages, pinned ONNX Runtime (.ort/), Python venv (.venv/)
#   make fixtures   setup + fixture models (models/fixtures/out/) + reference data (tests/data/generated/)
#   make build      cargo build --release (GST_FACENET_ORT_DYLIB = pinned ORT library)
#   make test       setup, fixtures, build, cargo test --release (and the fault-injection tests), pytest tests/python
#   make fuzz       the cargo-fuzz targets for FUZZ_SECONDS (20) each over fuzz/corpus (part of make test)
#   make memcheck   valgrind memcheck through every element (part of make test)
#   make soak       the long reliability runs of RELIABILITY.md (about an hour)
#   make lint       cargo fmt --check; cargo clippy --all-targets --all-features --release -- -D warnings
#   make demo       setup, fixtures, build, scripts/demo.sh
#   make install    plugin, ONNX Runtime, facenet-enroll (PREFIX, PLUGINDIR, BINDIR, DESTDIR honoured)
#   make uninstall  remove it again
#   make deb        Debian package (target/deb/gstreamer1.0-facenet_*.deb)
#   make clean      build outputs and generated test data; `make distclean` also .venv .ort .cache

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-print-directory

# rustup's default location, for shells that do not source ~/.cargo/env
ifeq ($(shell command -v cargo 2>/dev/null),)
  ifneq ($(wildcard $(HOME)/.cargo/bin/cargo),)
    export PATH := $(HOME)/.cargo/bin:$(PATH)
  endif
endif

CARGO   ?= cargo
VENV    := $(CURDIR)/.venv
PYTHON  := $(VENV)/bin/python

ORT_VERSION    := 1.24.1
ORT_LIB_DIR    := $(CURDIR)/.ort/onnxruntime-openvino-$(ORT_VERSION)/lib
ORT_DYLIB_PATH := $(ORT_LIB_DIR)/libonnxruntime.so

FIXTURES_DIR  := $(CURDIR)/models/fixtures/out
MODELS_DIR    := $(CURDIR)/models/out
FACEAPI_DIR   := $(CURDIR)/models/faceapi
FACEAPI_NPM   := $(FACEAPI_DIR)/node_modules/.package-lock.json
FACEAPI_RESNET := $(MODELS_DIR)/faceapi_resnet128.onnx
FACEAPI_SSD   := $(MODELS_DIR)/faceapi_ssd_mobilenetv1.onnx
FACEAPI_LM68  := $(MODELS_DIR)/faceapi_landmark68.onnx
IRV1_128      := $(MODELS_DIR)/inception_resnet_v1_128.onnx
IRV1_512      := $(MODELS_DIR)/inception_resnet_v1_512.onnx
MODELS        := $(FACEAPI_RESNET) $(FACEAPI_SSD) $(FACEAPI_LM68) $(IRV1_128) $(IRV1_512)
# face-api's demo photos (six group photos, about 20 different people), from its npm package.
SAMPLE_PHOTOS := $(FACEAPI_DIR)/node_modules/@vladmandic/face-api/demo
REFERENCE_DIR := $(CURDIR)/tests/data/generated
PLUGIN_SO     := $(CURDIR)/target/release/libgstfacenet.so

# build.rs bakes GST_FACENET_ORT_DYLIB in as the plugin's default library path; the ort crate
# (load-dynamic) reads ORT_DYLIB_PATH. Exported for every cargo call so that build, test and
# clippy see the same value and do not rebuild each other's outputs.
export GST_FACENET_ORT_DYLIB := $(ORT_DYLIB_PATH)
export ORT_DYLIB_PATH
# Where the generated test inputs live (for tests that want them without hard-coded paths).
export GST_FACENET_FIXTURES_DIR  := $(FIXTURES_DIR)
export GST_FACENET_REFERENCE_DIR := $(REFERENCE_DIR)
export GST_FACENET_MODELS_DIR    := $(MODELS_DIR)
export GST_FACENET_SAMPLES_DIR   := $(SAMPLE_PHOTOS)

PREFIX    ?= $(shell pkg-config --variable=prefix gstreamer-1.0 2>/dev/null || echo /usr/local)
PLUGINDIR ?= $(shell pkg-config --define-variable=prefix=$(PREFIX) --variable=pluginsdir gstreamer-1.0 2>/dev/null || echo $(PREFIX)/lib/gstreamer-1.0)

# Environment for running GStreamer against the freshly built plugin.
GST_TEST_ENV := GST_PLUGIN_PATH=$(CURDIR)/target/release GST_REGISTRY_1_0=$(CURDIR)/target/gst-registry.bin

.PHONY: models check-models all setup check-rust setup-apt setup-ort setup-venv fixtures build test test-rust test-python \
        demo fuzz memcheck soak install uninstall deb lint fmt clean distclean print-env

all: build

## setup ---------------------------------------------------------------------------------------
setup: check-rust setup-apt setup-ort setup-venv

check-rust:
	@scripts/check-rust.sh

setup-apt:
	@scripts/setup-apt.sh

setup-ort: setup-apt
	@scripts/setup-ort.sh

setup-venv: setup-apt setup-ort
	@scripts/setup-venv.sh

## generated test inputs -------------------------------------------------------------------------
fixtures: setup
	@$(PYTHON) models/fixtures/make_fixtures.py $(FIXTURES_DIR)
	@$(PYTHON) tests/python/make_reference.py --fixtures $(FIXTURES_DIR) --out $(REFERENCE_DIR)

## models (models/README.md) -------------------------------------------------------------------
models: setup $(MODELS)

# face-api's npm package (pinned in models/faceapi/package-lock.json) carries the weights.
$(FACEAPI_NPM): $(FACEAPI_DIR)/package-lock.json
	cd $(FACEAPI_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(FACEAPI_RESNET): $(FACEAPI_NPM) $(FACEAPI_DIR)/convert.py
	$(PYTHON) $(FACEAPI_DIR)/convert.py $@

$(FACEAPI_SSD): $(FACEAPI_NPM) $(FACEAPI_DIR)/convert_detector.py
	$(PYTHON) $(FACEAPI_DIR)/convert_detector.py $@

$(FACEAPI_LM68): $(FACEAPI_NPM) $(FACEAPI_DIR)/convert_landmarks.py $(FACEAPI_DIR)/convert_detector.py
	$(PYTHON) $(FACEAPI_DIR)/convert_landmarks.py $@

$(IRV1_128): models/inception_resnet_v1/build.py
	$(PYTHON) models/inception_resnet_v1/build.py --seed 0 --dim 128 -o $@

$(IRV1_512): models/inception_resnet_v1/build.py
	$(PYTHON) models/inception_resnet_v1/build.py --seed 0 --dim 512 -o $@

# The converted models against the original code (face-api in Node) and the recorded
# facenet-pytorch parameter table.
check-models: models
	PYTHON=$(PYTHON) $(FACEAPI_DIR)/check.sh $(FACEAPI_RESNET)
	PYTHON=$(PYTHON) $(FACEAPI_DIR)/check_detector.sh
	$(PYTHON) -m pytest -q models/inception_resnet_v1

## build -----------------------------------------------------------------------------------------
build: check-rust setup-apt setup-ort
	$(CARGO) build --release

## test ------------------------------------------------------------------------------------------
test: setup fixtures models build check-models
	$(CARGO) test --release
	$(CARGO) test --release --features fault-injection --test faults
	$(GST_TEST_ENV) $(PYTHON) -m pytest -q tests/python
	@$(MAKE) memcheck
	@$(MAKE) fuzz

test-rust: setup fixtures models build
	$(CARGO) test --release
	$(CARGO) test --release --features fault-injection --test faults

test-python: setup fixtures models build
	$(GST_TEST_ENV) $(PYTHON) -m pytest -q tests/python

## fuzz ----------------------------------------------------------------------------------------
# cargo-fuzz targets (stable toolchain, -s none, debug assertions and overflow checks on)
# over the committed corpus in fuzz/corpus/, FUZZ_SECONDS each (fuzz/README.md).
FUZZ_SECONDS ?= 20
fuzz: setup-ort fixtures
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

## reliability (RELIABILITY.md) ------------------------------------------------------------------
# valgrind memcheck of a short pipeline through all four elements (part of make test).
memcheck: setup fixtures models build
	$(GST_TEST_ENV) scripts/memcheck.sh

# The long runs: 100,000-frame soak, 1,000 real-model state cycles, real-model memcheck.
soak: setup fixtures models build
	$(GST_TEST_ENV) scripts/soak.sh

## demo ------------------------------------------------------------------------------------------
demo: setup models build
	$(GST_TEST_ENV) scripts/demo.sh

## install ---------------------------------------------------------------------------------------
# The plugin into PLUGINDIR; the pinned ONNX Runtime (with its OpenVINO provider) into
# gst-facenet/ beside PLUGINDIR, where the plugin looks for it (src/backend/mod.rs), outside
# the plugin folder so GStreamer's plugin scanner leaves it alone; facenet-enroll into
# PREFIX/bin. DESTDIR stages everything (packaging, tests/python/test_install.py).
PLUGINDIR_CLEAN := $(patsubst %/,%,$(PLUGINDIR))
ORT_INSTALL_DIR := $(dir $(PLUGINDIR_CLEAN))gst-facenet
BINDIR          ?= $(PREFIX)/bin
ENROLL_BIN      := $(CURDIR)/target/release/facenet-enroll

install: setup-ort
	@if [ ! -f "$(PLUGIN_SO)" ] || [ ! -f "$(ENROLL_BIN)" ]; then $(MAKE) build; fi
	install -d "$(DESTDIR)$(PLUGINDIR_CLEAN)" "$(DESTDIR)$(ORT_INSTALL_DIR)" "$(DESTDIR)$(BINDIR)"
	install -m 0644 "$(PLUGIN_SO)" "$(DESTDIR)$(PLUGINDIR_CLEAN)/libgstfacenet.so"
	install -m 0755 "$(ENROLL_BIN)" "$(DESTDIR)$(BINDIR)/facenet-enroll"
	cp -P --preserve=mode "$(ORT_LIB_DIR)"/*.so* "$(DESTDIR)$(ORT_INSTALL_DIR)/"
	@echo "installed: $(DESTDIR)$(PLUGINDIR_CLEAN)/libgstfacenet.so, ONNX Runtime in $(DESTDIR)$(ORT_INSTALL_DIR)"

uninstall:
	rm -f "$(DESTDIR)$(PLUGINDIR_CLEAN)/libgstfacenet.so" "$(DESTDIR)$(BINDIR)/facenet-enroll"
	rm -rf "$(DESTDIR)$(ORT_INSTALL_DIR)"

# A Debian package of the plugin, ONNX Runtime and facenet-enroll: target/deb/*.deb.
# DEB_COMPRESSION=none|gzip|xz (default xz).
deb: build
	scripts/build-deb.sh

## lint ------------------------------------------------------------------------------------------
lint: check-rust setup-apt setup-ort
	$(CARGO) fmt --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	$(CARGO) clippy --all-targets --all-features --release -- -D warnings

fmt:
	$(CARGO) fmt

## housekeeping ----------------------------------------------------------------------------------
clean:
	-$(CARGO) clean
	rm -rf "$(FIXTURES_DIR)" "$(REFERENCE_DIR)"
	find tests models scripts -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache

distclean: clean
	rm -rf .venv .ort .cache

print-env:
	@echo "ORT_DYLIB_PATH=$(ORT_DYLIB_PATH)"
	@echo "GST_FACENET_ORT_DYLIB=$(GST_FACENET_ORT_DYLIB)"
	@echo "GST_FACENET_FIXTURES_DIR=$(FIXTURES_DIR)"
	@echo "GST_FACENET_REFERENCE_DIR=$(REFERENCE_DIR)"
	@echo "GST_PLUGIN_PATH=$(CURDIR)/target/release"
	@echo "PREFIX=$(PREFIX)"
	@echo "PLUGINDIR=$(PLUGINDIR)"
	@echo "PYTHON=$(PYTHON)"

## bench -----------------------------------------------------------------------------------------
# The benchmark suite (BENCHMARKS.md); results in target/bench/results.md.
.PHONY: bench
bench: setup models build
	scripts/bench.sh

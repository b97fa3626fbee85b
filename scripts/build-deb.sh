#!/usr/bin/env bash
# Builds a Debian package of the plugin, the pinned ONNX Runtime it loads and
# facenet-enroll, from what `make build` produced: `make install` into a staging root
# (PREFIX=/usr, Debian's multiarch plugin folder), a control file, dpkg-deb.
#   DEB_COMPRESSION  none | gzip | xz (default xz)
#   DEB_OUT          output folder (default target/deb)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=${DEB_OUT:-target/deb}
stage=$(realpath -m "$out/stage")
package=gstreamer1.0-facenet

rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr \
    PLUGINDIR="/usr/lib/$multiarch/gstreamer-1.0" BINDIR=/usr/bin >/dev/null

install -d "$stage/usr/share/doc/$package"
install -m 0644 LICENSE "$stage/usr/share/doc/$package/copyright"
install -m 0644 README.md CHANGELOG.md "$stage/usr/share/doc/$package/"

installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
gst_version=$(pkg-config --modversion gstreamer-1.0 | cut -d. -f1,2)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: $arch
Maintainer: gst-facenet developers <gst-facenet@example.invalid>
Installed-Size: $installed_kb
Depends: libgstreamer1.0-0 (>= $gst_version), libgstreamer-plugins-base1.0-0 (>= $gst_version), libc6, libstdc++6
Section: video
Priority: optional
Homepage: https://example.invalid/gst-facenet
Description: GStreamer face-embedding elements (FaceNet and friends) on ONNX Runtime
 facedetect finds faces, facenet turns frames or faces into embeddings attached as
 FaceNetEmbeddingMeta, faceidentify names them from a gallery, faceoverlay draws them.
 Ships ONNX Runtime (CPU and OpenVINO execution providers) in
 /usr/lib/$multiarch/gst-facenet/ and the facenet-enroll gallery tool.
CONTROL

deb="$out/${package}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"

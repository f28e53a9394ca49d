#!/usr/bin/env bash
# Build the Debian package: target/debian/layerinv_VERSION_ARCH.deb.
#
#   scripts/build-deb.sh            # cargo build --release first (LAYERINV=path skips it)
#   sudo apt install ./target/debian/layerinv_*.deb
#
# It holds the binary (/usr/bin/layerinv), the bundled trunk and decoders
# (/usr/share/layerinv/weights, where the installed binary looks), the menu entry with the image
# types it opens, the icon at the hicolor sizes, manual pages for layerinv and each subcommand,
# bash/zsh/fish completions, and the licences and weights' provenance under /usr/share/doc.
# Needs dpkg-deb and dpkg-shlibdeps (dpkg-dev); `lintian` checks the result if it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LAYERINV:-}" ]; then
    cargo build --release --locked
    LAYERINV=${CARGO_TARGET_DIR:-target}/release/layerinv
fi
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
NAME=layerinv_${VERSION}_${ARCH}
OUT=target/debian
STAGE=$OUT/$NAME
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN"

# The program, stripped (the release build keeps line tables for backtraces).
install -D -m 755 "$LAYERINV" "$STAGE/usr/bin/layerinv"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/layerinv"

# The bundled weights.
install -d "$STAGE/usr/share/layerinv/weights"
install -m 644 weights/*.safetensors weights/imagenet_classes.txt "$STAGE/usr/share/layerinv/weights/"

# Menu entry and icon.
install -D -m 644 packaging/layerinv.desktop "$STAGE/usr/share/applications/layerinv.desktop"
for png in packaging/icons/layerinv-*.png; do
    size=${png##*-}; size=${size%.png}
    install -D -m 644 "$png" "$STAGE/usr/share/icons/hicolor/${size}x${size}/apps/layerinv.png"
done

# Manual pages and completions, from the clap definitions.
MAN=$(mktemp -d)
trap 'rm -rf "$MAN"' EXIT
"$LAYERINV" man "$MAN"
install -d "$STAGE/usr/share/man/man1"
for page in "$MAN"/*.1; do
    gzip -9n < "$page" > "$STAGE/usr/share/man/man1/$(basename "$page").gz"
done
chmod 644 "$STAGE"/usr/share/man/man1/*
install -d "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" \
    "$STAGE/usr/share/fish/vendor_completions.d"
"$LAYERINV" completions bash > "$STAGE/usr/share/bash-completion/completions/layerinv"
"$LAYERINV" completions zsh > "$STAGE/usr/share/zsh/vendor-completions/_layerinv"
"$LAYERINV" completions fish > "$STAGE/usr/share/fish/vendor_completions.d/layerinv.fish"
chmod 644 "$STAGE"/usr/share/bash-completion/completions/* "$STAGE"/usr/share/zsh/vendor-completions/* \
    "$STAGE"/usr/share/fish/vendor_completions.d/*

# Licences, the weights' provenance, a changelog.
DOC=$STAGE/usr/share/doc/layerinv
install -D -m 644 packaging/copyright "$DOC/copyright"
install -m 644 weights/README.md "$DOC/README.weights.md"
{
    echo "layerinv ($VERSION) unstable; urgency=low"
    echo
    echo "  * Built from commit $(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)."
    echo
    echo " -- layerinv developers <maintainers@users.noreply.r-seed-3f501204.example>  $(date -R -d @"$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n > "$DOC/changelog.gz"
chmod 644 "$DOC/changelog.gz"

# Control file: shared-library dependencies from dpkg-shlibdeps; the desktop app opens its
# window through libraries it loads at run time (X11 or Wayland, EGL/GL), recommended here.
SHL=$(mktemp -d)
mkdir -p "$SHL/debian"
printf 'Source: layerinv\n\nPackage: layerinv\nArchitecture: any\n' > "$SHL/debian/control"
DEPENDS=$(cd "$SHL" && dpkg-shlibdeps -O "$OLDPWD/$STAGE/usr/bin/layerinv" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$SHL"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: layerinv
Version: $VERSION
Architecture: $ARCH
Maintainer: layerinv developers <maintainers@users.noreply.r-seed-3f501204.example>
Installed-Size: $SIZE
Depends: $DEPENDS
Recommends: libegl1, libgl1, libx11-6, libxcursor1, libxi6, libxrandr2, libxkbcommon-x11-0, libwayland-client0, libwayland-egl1, xdg-utils
Section: graphics
Priority: optional
Description: see how much of an image survives in each layer of a classifier
 layerinv rebuilds a photo from a chosen layer (pool1 to pool5) of a pretrained
 VGG-16 with trained decoders side by side: SAE (unpooling with fixed switches),
 SWWAE (unpooling with the switches the max-pooling recorded) and a learned
 up-convolutional decoder. A desktop app compares them (zoom, blink, error maps,
 switch transplant, channel masks) and trains new decoders in the background;
 the command line does the same work.
 .
 The ImageNet VGG-16 trunk (CC BY 4.0) and trained decoders are included.
CONTROL
(cd "$STAGE" && find usr -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
chmod 644 "$STAGE/DEBIAN/md5sums"
find "$STAGE" -type d -exec chmod 755 {} +
dpkg-deb --root-owner-group --build "$STAGE" "$OUT/$NAME.deb" >/dev/null
echo "$OUT/$NAME.deb"
if command -v lintian >/dev/null; then
    # As root (a build container) lintian asks for --allow-root.
    lintian --info $([ "$(id -u)" = 0 ] && echo --allow-root) "$OUT/$NAME.deb" || true
fi

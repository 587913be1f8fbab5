#!/usr/bin/env bash
# Wrap Fireside.app in a compressed, read-only disk image with an /Applications link to drag it onto.
#
#   packaging/macos/make_dmg.sh build/package/Fireside.app dist/Fireside-0.1.0-macos-arm64.dmg
#
# Uses only hdiutil (part of macOS). Signing and notarization are separate steps (see
# packaging/README.md): unsigned, Gatekeeper asks the user to confirm on first open (right-click > Open).
# UNTESTED here (built and tested on Linux only).
set -euo pipefail

app=${1:?usage: make_dmg.sh PATH/TO/Fireside.app OUTPUT.dmg}
dmg=${2:?usage: make_dmg.sh PATH/TO/Fireside.app OUTPUT.dmg}
[[ -d "$app" && -f "$app/Contents/Info.plist" ]] || { echo "make_dmg.sh: $app is not an app bundle" >&2; exit 1; }
command -v hdiutil >/dev/null || { echo "make_dmg.sh: hdiutil not found (macOS only)" >&2; exit 1; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/fireside-dmg.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# ditto keeps the bundle's symlinks, permissions and extended attributes (cp -R can lose them).
ditto "$app" "$stage/$(basename "$app")"
ln -s /Applications "$stage/Applications"

mkdir -p "$(dirname "$dmg")"
rm -f "$dmg"
hdiutil create -volname "Fireside" -srcfolder "$stage" -fs HFS+ -format UDZO -imagekey zlib-level=9 -ov "$dmg"
hdiutil verify "$dmg"
echo "$dmg"

#!/bin/sh
# Install Fireside from this archive: the app, a `fireside` command, the menu entry, the icons and
# the .gguf file type ("Open with Fireside" in file managers).
#
#   ./install.sh                  for the current user, under ~/.local
#   sudo ./install.sh --system    for everyone, under /usr/local
#   ./install.sh --prefix DIR     under DIR (DIR/lib/fireside, DIR/bin, DIR/share)
#   ./install.sh --uninstall [--system | --prefix DIR]
#
# Models are not touched: they live in ~/.local/share/fireside/models (or $FIRESIDE_MODELS).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix="${HOME}/.local"
uninstall=0
while [ $# -gt 0 ]; do
    case "$1" in
        --system) prefix=/usr/local ;;
        --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }; prefix=$2; shift ;;
        --prefix=*) prefix=${1#--prefix=} ;;
        --uninstall) uninstall=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
app="$prefix/lib/fireside"
bin="$prefix/bin"
share="$prefix/share"
sizes="16 24 32 48 64 128 256 512"

refresh() {
    # Best effort: the caches are rebuilt at next login anyway where these tools are missing.
    command -v update-mime-database >/dev/null 2>&1 && update-mime-database "$share/mime" >/dev/null 2>&1 || true
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$share/applications" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$share/icons/hicolor" 2>/dev/null || true
}

if [ "$uninstall" = 1 ]; then
    rm -rf "$app"
    rm -f "$bin/fireside" "$share/applications/fireside.desktop" "$share/mime/packages/fireside-mime.xml" \
          "$share/icons/hicolor/scalable/apps/fireside.svg"
    for n in $sizes; do rm -f "$share/icons/hicolor/${n}x${n}/apps/fireside.png"; done
    refresh
    echo "Fireside removed from $prefix (models were kept)."
    exit 0
fi

[ -x "$here/Fireside/Fireside" ] || { echo "install.sh: $here/Fireside/Fireside is missing" >&2; exit 1; }
rm -rf "$app.new"
mkdir -p "$prefix/lib" "$bin" "$share/applications" "$share/mime/packages" "$share/icons/hicolor/scalable/apps"
cp -R "$here/Fireside" "$app.new"
rm -rf "$app"
mv "$app.new" "$app"
ln -sf "$app/Fireside" "$bin/fireside"

# The menu entry names the installed command by its full path: ~/.local/bin is not always on PATH.
sed -e "s|^Exec=fireside|Exec=$bin/fireside|" -e "s|^TryExec=fireside|TryExec=$bin/fireside|" \
    "$here/share/applications/fireside.desktop" > "$share/applications/fireside.desktop"
chmod 644 "$share/applications/fireside.desktop"
cp "$here/share/mime/packages/fireside-mime.xml" "$share/mime/packages/"
cp "$here/share/icons/hicolor/scalable/apps/fireside.svg" "$share/icons/hicolor/scalable/apps/"
for n in $sizes; do
    mkdir -p "$share/icons/hicolor/${n}x${n}/apps"
    cp "$here/share/icons/hicolor/${n}x${n}/apps/fireside.png" "$share/icons/hicolor/${n}x${n}/apps/"
done
refresh

echo "Fireside installed in $app"
echo "  command: $bin/fireside   (run \`fireside --help\`; no arguments opens the app)"
case ":$PATH:" in *":$bin:"*) ;; *) echo "  note: $bin is not on your PATH" ;; esac

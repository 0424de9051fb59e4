#!/usr/bin/env bash
# Put Scriptbox in the desktop's application menu: installs scriptbox.desktop and the
# icon under $XDG_DATA_HOME (default ~/.local/share; use XDG_DATA_HOME=/usr/local/share
# as root for every user).
#
# Usage: packaging/linux/install-desktop-entry.sh [COMMAND...]
#   COMMAND runs Scriptbox; " desktop" is appended. Default: the bundle in
#   dist/scriptbox if it was built, else this checkout's venv python + app.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data_home=${XDG_DATA_HOME:-$HOME/.local/share}

if (($# == 0)); then
  if [ -x "$root/dist/scriptbox/scriptbox" ]; then
    set -- "$root/dist/scriptbox/scriptbox"
  else
    set -- "$root/.venv/bin/python" "$root/app.py"
  fi
fi

# Desktop Entry Exec quoting: each argument in double quotes with \ " ` $ backslashed;
# then every backslash doubled, because the file's string unescaping runs first.
exec_line=""
for arg in "$@" desktop; do
  escaped=$(printf '%s' "$arg" | sed -e 's/[\\"`$]/\\&/g' -e 's/\\/\\\\/g')
  exec_line+="${exec_line:+ }\"$escaped\""
done

apps="$data_home/applications"
mkdir -p "$apps" "$data_home/icons/hicolor/256x256/apps" "$data_home/icons/hicolor/scalable/apps"
install -m 0644 "$root/packaging/icons/scriptbox-256.png" "$data_home/icons/hicolor/256x256/apps/scriptbox.png"
install -m 0644 "$root/packaging/icons/scriptbox.svg" "$data_home/icons/hicolor/scalable/apps/scriptbox.svg"
# awk with ENVIRON (not sed, not -v): the Exec line must reach the file byte for byte.
EXEC_LINE="Exec=$exec_line" awk '/^Exec=/ { print ENVIRON["EXEC_LINE"]; next } { print }' \
  "$here/scriptbox.desktop" > "$apps/scriptbox.desktop.tmp"
chmod 0644 "$apps/scriptbox.desktop.tmp"
mv "$apps/scriptbox.desktop.tmp" "$apps/scriptbox.desktop"

if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$apps/scriptbox.desktop"
fi
if command -v update-desktop-database >/dev/null; then
  update-desktop-database -q "$apps" || true  # only a menu cache; the entry works without it
fi
echo "installed $apps/scriptbox.desktop (Exec=$exec_line)"

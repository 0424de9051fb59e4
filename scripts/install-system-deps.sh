#!/usr/bin/env bash
# System packages the browser and desktop tests need (Debian/Ubuntu, as root).
# Installs only what is missing, so a second `make test` does not touch apt.
set -euo pipefail
PACKAGES=(
  chromium fonts-dejavu-core          # UI tests: real headless Chromium
  xvfb xauth imagemagick x11-utils    # desktop tests: virtual screen + screenshots
  libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libnss3  # Qt WebEngine
  libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1  # Qt's xcb plugin
  openssl                             # TLS test: a self-signed certificate
  desktop-file-utils systemd binutils  # packaging tests: .desktop validation, systemd-analyze, PyInstaller
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

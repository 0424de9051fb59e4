#!/usr/bin/env bash
# Build the one-folder desktop/server bundle into dist/scriptbox/ (program: dist/scriptbox/scriptbox).
#
# Needs: the venv with requirements.txt, requirements-desktop.txt and
# packaging/requirements-build.txt installed, the built UI (ui/dist) and the vm2
# harness's node_modules; `make bundle` prepares all of that and then calls this.
# PyInstaller's work files go to build/pyinstaller/ (kept: a rebuild reuses them).
# The spec also writes LICENSE and the third-party notices (packaging/notices.py) to
# the bundle's top folder, and stops with the list if any bundled licence is unknown.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

started=$(date +%s)
"$PY" -m PyInstaller --noconfirm --log-level WARN \
  --distpath dist --workpath build/pyinstaller \
  packaging/scriptbox.spec
echo "bundle: dist/scriptbox ($(du -sh dist/scriptbox | cut -f1)) built in $(( $(date +%s) - started )) s;" \
  "notices: $(grep -c -E '^\| (python|npm|runtime|system) \|' dist/scriptbox/THIRD-PARTY-NOTICES.md) components"

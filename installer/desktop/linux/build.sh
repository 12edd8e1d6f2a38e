#!/usr/bin/env bash
# Builds the Linux bundle of the desktop app (PyInstaller onedir) from the spec shared with Windows/macOS.
#   installer/desktop/linux/build.sh [DIST_DIR] [WORK_DIR]
#   -> DIST_DIR/sendergate-desktop/sendergate-desktop   (DIST_DIR defaults to dist/, WORK_DIR to build/)
# Uses the Python environment SenderGate is installed in with the `package` extra (PYTHON, default
# .venv/bin/python): `pip install -e .[package]`, or installer/dev/python-env.sh package.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
dist="$(realpath -m "${1:-$root/dist}")"
work="$(realpath -m "${2:-$root/build}")"
py="${PYTHON:-$root/.venv/bin/python}"
"$py" -c 'import PyInstaller' 2>/dev/null || {
  echo "build.sh: PyInstaller is not installed for $py (pip install -e .[package])" >&2; exit 1; }
cd "$root"
"$py" -m PyInstaller --noconfirm --clean --log-level "${PYINSTALLER_LOG_LEVEL:-WARN}" \
  --distpath "$dist" --workpath "$work" installer/desktop/sendergate-desktop.spec
# A bundle that cannot even report its version is not worth shipping; no display needed for this.
"$dist/sendergate-desktop/sendergate-desktop" --version
echo "bundle: $dist/sendergate-desktop ($(du -sh "$dist/sendergate-desktop" | cut -f1))"

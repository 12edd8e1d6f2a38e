#!/usr/bin/env bash
# The demo, from a fresh Debian/Ubuntu machine:
#   bash installer/dev/demo.sh
# Installs Qt's runtime libraries and the Python environment when missing,
# then runs `sendergate demo`: a gateway on loopback with a fresh SQLite
# store and seeded activity, and the desktop app connected to it.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash installer/dev/system-deps.sh demo
bash installer/dev/python-env.sh desktop
exec .venv/bin/sendergate demo "$@"

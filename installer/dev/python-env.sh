#!/usr/bin/env bash
# Creates .venv and installs SenderGate with the extras for the given job,
# only when something changed since the last install.
#   installer/dev/python-env.sh demo|test|package
set -euo pipefail
cd "$(dirname "$0")/../.."
extra=${1:-test}
py=${PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "sendergate: Python 3.11 or newer is needed (found: $("$py" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv || { echo "sendergate: cannot create .venv (on Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
stamp=".venv/.installed-$extra"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extra]"
  touch "$stamp"
fi

#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine:
#   bash tests/run.sh [pytest args]
# Installs what the tests need when it is missing (Debian packages: clamd,
# spamd, Postfix, Dovecot, PostgreSQL, Chromium, Xvfb, Qt's libraries; the
# Python environment in .venv), runs the lint and type gates (ruff, mypy:
# configured in pyproject.toml, a few seconds), then pytest. The tests start
# and stop their own daemons on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/dev/system-deps.sh test
bash installer/dev/python-env.sh test
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export PYTHONDONTWRITEBYTECODE=1
echo "tests/run.sh: ruff check" >&2
.venv/bin/python -m ruff check --quiet --output-format=concise . || { echo "tests/run.sh: ruff found problems (above)" >&2; exit 1; }
echo "tests/run.sh: mypy" >&2
.venv/bin/python -m mypy || { echo "tests/run.sh: mypy found problems (above)" >&2; exit 1; }
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "tests/run.sh: pytest collected no tests" >&2
fi
exit "$code"

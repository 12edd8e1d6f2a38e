#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine:
#   bash tests/run.sh [pytest args]
# Installs what the tests need when it is missing (Debian packages: clamd,
# spamd, Postfix, Dovecot, PostgreSQL, Chromium, Xvfb, Qt's libraries; the
# Python environment in .venv), then runs pytest. The tests start and stop
# their own daemons on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/dev/system-deps.sh test
bash installer/dev/python-env.sh test
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export PYTHONDONTWRITEBYTECODE=1
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "tests/run.sh: pytest collected no tests" >&2
fi
exit "$code"

#!/usr/bin/env bash
# Installs or upgrades the SenderGate gateway on a Linux host with systemd.
#
#   sudo bash installer/gateway/install.sh                      # from this checkout
#   sudo bash installer/gateway/install.sh --source sendergate-0.2.0-py3-none-any.whl
#
# What it does, every time (running it again is the upgrade path):
#   - creates the system user and group `sendergate` (no login, no home);
#   - creates or reuses the Python environment in /opt/sendergate and installs
#     the package into it (from the checkout or a wheel), replacing an older version;
#   - installs /etc/sendergate/sendergate.toml from the sample only when there
#     is none (an existing configuration is never touched);
#   - installs the systemd unit and the logrotate snippet (replacing older ones);
#   - runs `sendergate check-config` as the sendergate user: it validates the
#     configuration and migrates the store to the new schema. The store
#     (/var/lib/sendergate, or PostgreSQL) is kept;
#   - enables the service, and restarts it if it was running.
# The desktop app's settings and secrets live on the users' own machines and
# are not touched here.
#
# Options:
#   --source PATH        a checkout (default: the one holding this script) or a .whl
#   --python PY          interpreter for the environment (default: python3; 3.11+)
#   --pip-options "..."  passed to pip, e.g. "--no-index --find-links /srv/wheels"
#                        for a host without access to a package index
#   --prefix DIR         install everything under DIR (DIR/opt/sendergate,
#                        DIR/etc/sendergate, DIR/var/lib/sendergate, ...) as the
#                        current user: for trying it out and for tests. Implies
#                        --no-systemd and creates no user.
#   --no-systemd         do not call systemctl (the unit file is still installed)
#   --dry-run            print what would be done, change nothing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_path=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
pip_options=""
prefix=""
use_systemd=1
dry_run=0

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }
run() {
  if [ "$dry_run" = 1 ]; then echo "+ $*"; else "$@"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_path=${2:?--source needs a path}; shift 2 ;;
    --python) python=${2:?--python needs an interpreter}; shift 2 ;;
    --pip-options) pip_options=${2?--pip-options needs a value}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --no-systemd) use_systemd=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if [ -n "$prefix" ]; then
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
  use_systemd=0
  manage_user=0
else
  [ "$(id -u)" = 0 ] || die "run as root (or with --prefix DIR to install under DIR as yourself)"
  manage_user=1
fi

venv="$prefix/opt/sendergate"
etc="$prefix/etc/sendergate"
config="$etc/sendergate.toml"
state="$prefix/var/lib/sendergate"
unit_dir="$prefix/etc/systemd/system"
logrotate_dir="$prefix/etc/logrotate.d"
doc_dir="$venv/share/doc"

[ -e "$source_path" ] || die "no such source: $source_path"
source_path=$(realpath "$source_path")
# The service runs in / (systemd's default): so do the commands below, so a
# relative path in the configuration means the same file to both.
cd /
case "$source_path" in
  *.whl) ;;
  *) [ -f "$source_path/pyproject.toml" ] || die "$source_path is neither a wheel nor a checkout (no pyproject.toml)" ;;
esac
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "Python 3.11 or newer is needed (--python; found: $("$python" --version 2>&1 || echo none))"

# --- user -------------------------------------------------------------------
if [ "$manage_user" = 1 ] && ! getent passwd sendergate >/dev/null; then
  say "creating system user sendergate"
  run useradd --system --user-group --home-dir /var/lib/sendergate --no-create-home \
    --shell /usr/sbin/nologin --comment "SenderGate mail gateway" sendergate
fi

# --- Python environment -----------------------------------------------------
# An existing environment is reused, so an upgrade only replaces packages.
if [ ! -x "$venv/bin/python" ]; then
  say "creating the Python environment in $venv"
  run "$python" -m venv "$venv" \
    || die "cannot create $venv (on Debian: apt-get install python3-venv)"
fi
target="$source_path"
workdir=""
if [ "${source_path%.whl}" = "$source_path" ]; then
  # pip builds a project in its own directory (build/, *.egg-info): build from a
  # copy so the checkout stays as it is.
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/sendergate-install-XXXXXX")
  trap 'rm -rf "$workdir"' EXIT
  tar -C "$source_path" --exclude=.venv --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' \
    --exclude=build --exclude=dist -cf - pyproject.toml README.md app resources \
    $(cd "$source_path" && ls -d LICENSE* 2>/dev/null || true) | tar -C "$workdir" -xf -
  target="$workdir"
fi
before=$("$venv/bin/python" -c 'import sendergate; print(sendergate.__version__)' 2>/dev/null || echo none)
say "installing SenderGate from $source_path (installed before: $before)"
# shellcheck disable=SC2086  # pip_options is a list of words on purpose
run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pip_options --upgrade "$target"
if [ "$dry_run" = 0 ]; then
  after=$("$venv/bin/python" -c 'import sendergate; print(sendergate.__version__)')
  say "SenderGate $after installed in $venv"
fi

# --- files --------------------------------------------------------------------
run install -d -m 0755 "$unit_dir" "$logrotate_dir" "$doc_dir"
run install -m 0644 "$here/sendergate.service" "$unit_dir/sendergate.service"
run install -m 0644 "$here/logrotate" "$logrotate_dir/sendergate"
if [ -f "$source_path/resources/docs/deployment.md" ]; then
  run install -m 0644 "$source_path/resources/docs/deployment.md" "$doc_dir/deployment.md"
fi
run install -d -m 0750 "$etc"
fresh_config=0
if [ -e "$config" ]; then
  say "keeping the configuration $config"
else
  say "installing the sample configuration $config: edit it (at least [domains] local)"
  fresh_config=1
  if [ -n "$prefix" ]; then
    # A trial install keeps its store inside the prefix too.
    store_line="url = \"sqlite:///$state/state.db\""
    if [ "$dry_run" = 1 ]; then
      echo "+ sed 's|^# url = \"sqlite:.*|$store_line|' $here/sendergate.toml > $config"
    else
      sed "s|^# url = \"sqlite:.*|$store_line|" "$here/sendergate.toml" > "$config.new"
      chmod 0640 "$config.new"
      mv "$config.new" "$config"
    fi
  else
    run install -m 0640 "$here/sendergate.toml" "$config"
  fi
fi
run install -d -m 0750 "$state"
if [ "$manage_user" = 1 ]; then
  run chown root:sendergate "$etc" "$config"
  run chown sendergate:sendergate "$state"
fi

# --- store: validate and migrate ---------------------------------------------
as_gateway=()
if [ "$manage_user" = 1 ]; then
  as_gateway=(runuser -u sendergate --)
fi
say "checking the configuration and migrating the store"
config_ok=1
run "${as_gateway[@]}" "$venv/bin/sendergate" check-config --config "$config" \
  || config_ok=0

# --- service ----------------------------------------------------------------
if [ "$use_systemd" = 1 ]; then
  if [ ! -d /run/systemd/system ]; then
    say "systemd is not running here: start the gateway yourself ($venv/bin/sendergate gateway --config $config)"
  else
    run systemctl daemon-reload
    if [ "$config_ok" = 1 ]; then
      run systemctl enable sendergate.service
      if systemctl is-active --quiet sendergate.service; then
        say "restarting the running gateway (open transactions finish first)"
        run systemctl restart sendergate.service
      elif [ "$fresh_config" = 1 ]; then
        say "edit $config, then: systemctl start sendergate"
      else
        run systemctl start sendergate.service
      fi
    fi
  fi
fi

if [ "$config_ok" = 0 ]; then
  die "the configuration has problems (above): fix $config, run '$venv/bin/sendergate check-config --config $config', then 'systemctl restart sendergate'"
fi
say "done"

#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages SenderGate's demo or test suite needs,
# only those that are missing. Never starts system-wide services: the tests
# run their own instances on loopback ports.
#   installer/dev/system-deps.sh demo   # Qt runtime libraries
#   installer/dev/system-deps.sh test   # + clamd, spamd, Postfix, Dovecot, PostgreSQL, Chromium, Xvfb
set -euo pipefail
what=${1:-test}

qt_pkgs=(libegl1 libgl1 libx11-6 libxkbcommon0 libfontconfig1 fonts-dejavu-core
  libfreetype6 libglib2.0-0 libdbus-1-3 libx11-xcb1 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
  libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1
  libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxrender1 libxi6 libsm6 libice6
  libnss3 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libasound2)
test_pkgs=(clamav-daemon clamav spamd spamc spamassassin postfix dovecot-core
  dovecot-imapd dovecot-lmtpd postgresql chromium xvfb xauth imagemagick
  gnome-keyring dbus-x11 ca-certificates python3-venv sqlite3 espeak-ng
  logrotate openssl dbus procps systemd)

pkgs=("${qt_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "sendergate: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "sendergate: installing Debian packages: ${missing[*]}" >&2
# Keep package installs from starting system-wide daemons (postfix, clamd, dovecot, postgres).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"; created_policy=1
fi
trap '[ $created_policy = 1 ] && $SUDO rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

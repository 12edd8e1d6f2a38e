#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages SenderGate's demo or test suite needs,
# only those that are missing. Never starts system-wide services: the tests
# run their own instances on loopback ports.
#   installer/dev/system-deps.sh demo   # Qt runtime libraries
#   installer/dev/system-deps.sh test   # + clamd, spamd, rspamd, Postfix, Dovecot, PostgreSQL, Chromium, Xvfb;
#                                       # Exim's and OpenSMTPD's .debs fetched into .cache/debs/
# trayer: a tray host under Xvfb (tests/support/trayhost.py); desktop-file-validate and gio: the XDG
# autostart entry checked and launched as a desktop session would (tests/desktop/test_autostart.py).
set -euo pipefail
what=${1:-test}
repo=$(cd "$(dirname "$0")/../.." && pwd)

qt_pkgs=(libegl1 libgl1 libx11-6 libxkbcommon0 libfontconfig1 fonts-dejavu-core
  libfreetype6 libglib2.0-0 libdbus-1-3 libx11-xcb1 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
  libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1
  libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxrender1 libxi6 libsm6 libice6
  libnss3 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libasound2)
test_pkgs=(clamav-daemon clamav spamd spamc spamassassin rspamd postfix dovecot-core
  dovecot-imapd dovecot-lmtpd postgresql chromium xvfb xauth imagemagick
  gnome-keyring dbus-x11 ca-certificates python3-venv sqlite3 espeak-ng
  logrotate openssl dbus procps systemd util-linux
  trayer desktop-file-utils libglib2.0-bin
  libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0 libevent-2.1-7 libssl3)
# Exim and OpenSMTPD as a sender's server (tests/test_sender_mtas.py). Their packages conflict with
# Postfix (each provides mail-transport-agent): only fetched, never installed; the tests unpack
# them (dpkg -x) and run them in a private mount namespace. Their libraries are in test_pkgs.
sender_mta_debs=(exim4-base exim4-daemon-light opensmtpd)

pkgs=("${qt_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
if [ "$(id -u)" != 0 ] && [ ${#missing[@]} -gt 0 ]; then
  command -v sudo >/dev/null || { echo "sendergate: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi

fetch_debs() {
  local cache=$repo/.cache/debs want=() p
  for p in "${sender_mta_debs[@]}"; do
    compgen -G "$cache/${p}_*.deb" >/dev/null || want+=("$p")
  done
  [ ${#want[@]} -eq 0 ] && return 0
  echo "sendergate: fetching Debian packages (not installing them): ${want[*]}" >&2
  mkdir -p "$cache"
  # apt's download sandbox user cannot write into a root-owned checkout.
  local as_root=()
  [ "$(id -u)" = 0 ] && as_root=(-o APT::Sandbox::User=root)
  if ! (cd "$cache" && apt-get download -qq "${as_root[@]}" "${want[@]}"); then
    # Package lists never fetched on this machine: once more after an update.
    ${SUDO:-$([ "$(id -u)" = 0 ] || echo sudo)} apt-get update -qq
    (cd "$cache" && apt-get download -qq "${as_root[@]}" "${want[@]}")
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  [ "$what" = test ] && fetch_debs
  exit 0
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
[ "$what" = test ] && fetch_debs
exit 0

#!/usr/bin/env bash
# Builds the macOS app and disk image: PyInstaller .app -> codesign (hardened runtime) -> .dmg -> notarise.
#   installer/desktop/macos/build.sh [DIST_DIR] [WORK_DIR]
#   -> DIST_DIR/SenderGate.app, DIST_DIR/SenderGate-<version>.dmg
#
# Needs: Python with `pip install -e .[package]` (PYTHON, default .venv/bin/python), Xcode command-line tools.
# Signing, only when set (otherwise an unsigned app and dmg, and it says so):
#   SIGN_IDENTITY            "Developer ID Application: Name (TEAMID)", in the keychain
# Notarising (needs SIGN_IDENTITY), one of:
#   NOTARY_KEYCHAIN_PROFILE  a profile stored with `xcrun notarytool store-credentials`
#   NOTARY_APPLE_ID + NOTARY_TEAM_ID + NOTARY_PASSWORD   (an app-specific password)
#   NOTARY_KEY + NOTARY_KEY_ID + NOTARY_ISSUER           (App Store Connect API key: .p8 path, key id, issuer)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dist="${1:-$root/dist}"
work="${2:-$root/build}"
py="${PYTHON:-$root/.venv/bin/python}"
cd "$root"
mkdir -p "$dist" "$work"
dist="$(cd "$dist" && pwd)"; work="$(cd "$work" && pwd)"

"$py" -m PyInstaller --noconfirm --clean --log-level "${PYINSTALLER_LOG_LEVEL:-WARN}" \
  --distpath "$dist" --workpath "$work" installer/desktop/sendergate-desktop.spec
version="$("$py" -c 'import sendergate; print(sendergate.__version__)')"
app="$dist/SenderGate.app"
[ -d "$app" ] || { echo "build.sh: PyInstaller made no $app" >&2; exit 1; }
"$app/Contents/MacOS/sendergate-desktop" --version

notarise=""
if [ -n "${NOTARY_KEYCHAIN_PROFILE:-}" ]; then
  notarise="profile"
elif [ -n "${NOTARY_APPLE_ID:-}" ]; then
  : "${NOTARY_TEAM_ID:?NOTARY_APPLE_ID also needs NOTARY_TEAM_ID}" "${NOTARY_PASSWORD:?NOTARY_APPLE_ID also needs NOTARY_PASSWORD}"
  notarise="apple-id"
elif [ -n "${NOTARY_KEY:-}" ]; then
  : "${NOTARY_KEY_ID:?NOTARY_KEY also needs NOTARY_KEY_ID}" "${NOTARY_ISSUER:?NOTARY_KEY also needs NOTARY_ISSUER}"
  notarise="api-key"
fi
if [ -n "$notarise" ] && [ -z "${SIGN_IDENTITY:-}" ]; then
  echo "build.sh: notarising needs a signed app: set SIGN_IDENTITY too" >&2
  exit 1
fi

if [ -n "${SIGN_IDENTITY:-}" ]; then
  # --deep signs every library and framework inside with the same identity; the hardened runtime
  # (--options runtime) and a secure timestamp are what notarisation requires
  codesign --force --deep --timestamp --options runtime \
    --entitlements "$here/entitlements.plist" --sign "$SIGN_IDENTITY" "$app"
  codesign --verify --deep --strict --verbose=2 "$app"
else
  echo "build.sh: SIGN_IDENTITY not set: the app and dmg stay unsigned (Gatekeeper will warn)" >&2
fi

dmg="$dist/SenderGate-$version.dmg"
staging="$(mktemp -d "$work/dmg.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"  # drag the app onto it to install (or to upgrade in place)
rm -f "$dmg"
hdiutil create -volname "SenderGate $version" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$dmg"
if [ -n "${SIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$SIGN_IDENTITY" "$dmg"
fi

case "$notarise" in
  "") echo "build.sh: no NOTARY_* credentials: not notarised" >&2 ;;
  apple-id)
    xcrun notarytool submit "$dmg" --wait --apple-id "$NOTARY_APPLE_ID" --team-id "$NOTARY_TEAM_ID" \
      --password "$NOTARY_PASSWORD" ;;
  api-key)
    xcrun notarytool submit "$dmg" --wait --key "$NOTARY_KEY" --key-id "$NOTARY_KEY_ID" --issuer "$NOTARY_ISSUER" ;;
  profile)
    xcrun notarytool submit "$dmg" --wait --keychain-profile "$NOTARY_KEYCHAIN_PROFILE" ;;
esac
if [ -n "$notarise" ]; then
  # stapling fails when Apple rejected the submission (no ticket): the build fails with it. The
  # ticket travels inside the dmg: Gatekeeper accepts it offline
  xcrun stapler staple "$dmg"
  xcrun stapler validate "$dmg"
  spctl --assess --type open --context context:primary-signature --verbose=2 "$dmg"
fi
echo "app: $app"
echo "dmg: $dmg"

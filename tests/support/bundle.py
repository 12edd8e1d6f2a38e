"""The desktop bundle built by installer/desktop (PyInstaller), and its smoke run against a real gateway.

    python -m tests.support.bundle smoke PATH/TO/sendergate-desktop   # CI on macOS (.ci/desktop-release.yml)

tests/test_packaging.py builds the Linux bundle and calls `smoke_run` under a private D-Bus session with
GNOME Keyring unlocked, so keyring's Secret Service backend is exercised inside the bundle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.common import ServiceError, require_executable
from tests.support.gateway import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "alice@example.org"


def bundle_executable(dist: Path) -> Path:
    """The app's executable in a onedir build (PyInstaller's COLLECT folder, on every platform)."""
    name = "sendergate-desktop.exe" if sys.platform == "win32" else "sendergate-desktop"
    return dist / "sendergate-desktop" / name


def keyring_session_command(home: Path) -> list[str]:
    """A command prefix that runs the app in a D-Bus session of its own with an unlocked GNOME Keyring
    (ENVIRONMENT.md: without --unlock it fails on a prompt that cannot open). The keyring lives in `home`."""
    require_executable("/usr/bin/dbus-run-session", "dbus-run-session (Debian: dbus-daemon)")
    require_executable("/usr/bin/gnome-keyring-daemon", "gnome-keyring-daemon (Debian: gnome-keyring)")
    script = ('echo smoke-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null '
              '&& exec "$@"')
    return ["/usr/bin/dbus-run-session", "--", "/bin/sh", "-c", script, "sh"]


def isolated_env(home: Path, extra: Mapping[str, str] | None = None, *, own_home: bool = True) -> dict[str, str]:
    """The app's environment: offscreen Qt, a throwaway home (QSettings, caches, the keyring files).
    own_home=False keeps the user's home: the macOS Keychain is found through it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "GNOME_KEYRING", "PYTHON_KEYRING"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    if own_home:
        runtime = home / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env.update({"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "XDG_CONFIG_HOME": str(home / ".config"),
                    "XDG_DATA_HOME": str(home / ".local" / "share")})
    env.pop("PYTHONPATH", None)  # the bundle must stand on its own
    env.update(extra or {})
    return env


def smoke_run(executable: Path, gateway: GatewayProcess, token: str, home: Path, *, prefix: Sequence[str] = (),
              language: str = "de", own_home: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`sendergate-desktop --smoke-test` against the gateway; returns the finished process (text output)."""
    env = isolated_env(home, {"SENDERGATE_TOKEN": token}, own_home=own_home)
    argv = [*prefix, str(executable), "--gateway", gateway.http_url, "--language", language,
            "--settings-file", str(home / "settings.ini"), "--smoke-test"]
    return subprocess.run(argv, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def smoke(executable: Path, *, keyring_session: bool) -> int:
    """Start a gateway with one user, run the bundle's smoke test against it, print its report."""
    if not executable.is_file():
        raise ServiceError(f"no bundle executable at {executable}")
    home = Path(tempfile.mkdtemp(prefix="sendergate-smoke-home-"))
    gateway = GatewayProcess()
    try:
        _, token = gateway.store.add_user(ADDRESS, name="Smoke Test")
        gateway.start()
        prefix = keyring_session_command(home) if keyring_session else []
        done = smoke_run(executable, gateway, token, home, prefix=prefix, own_home=sys.platform != "darwin")
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    finally:
        gateway.close()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.bundle")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("smoke", help="run the bundle's --smoke-test against a fresh gateway")
    s.add_argument("executable", type=Path)
    s.add_argument("--keyring-session", action="store_true",
                   help="Linux: run it in a private D-Bus session with GNOME Keyring unlocked")
    args = p.parse_args(argv)
    return smoke(args.executable, keyring_session=args.keyring_session)


if __name__ == "__main__":
    raise SystemExit(main())

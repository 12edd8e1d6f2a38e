"""A desktop with a system tray for the desktop app's tray tests: Xvfb plus trayer (Debian's `trayer`, a
freedesktop system-tray host), so QSystemTrayIcon.isSystemTrayAvailable() is true for real and the
icon is embedded in a real tray (XEmbed). Qt shows its own balloon for notifications there (no D-Bus
notification service), which a test can click like a user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager


def missing() -> str:
    """What is missing to run a tray desktop here ("" when nothing is)."""
    gone = [p for p in ("Xvfb", "trayer") if shutil.which(p) is None]
    return ", ".join(gone) + " (installer/dev/system-deps.sh test)" if gone else ""


TRAYER = ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request"]


@contextmanager
def tray_desktop(*, tray: bool = True) -> Iterator[dict[str, str]]:
    """Xvfb and trayer running (without `tray`: Xvfb only, for a test that starts TRAYER itself, late);
    yields the environment for a Qt (xcb) process on that display."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    trayer: subprocess.Popen[bytes] | None = None
    try:
        with os.fdopen(read, "rb") as f:
            number = f.readline().strip().decode()  # Xvfb writes its display number once it accepts clients
        if not number:
            raise RuntimeError("Xvfb did not start")
        env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY")}
        # no session bus: Qt embeds the icon in the X tray (trayer) instead of looking for a D-Bus tray
        env.update(DISPLAY=f":{number}", QT_QPA_PLATFORM="xcb")
        if tray:
            trayer = subprocess.Popen(TRAYER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.2)
            if trayer.poll() is not None:
                raise RuntimeError(f"trayer exited with {trayer.returncode}")
        yield env
    finally:
        for proc in (trayer, xvfb):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

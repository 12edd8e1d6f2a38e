"""Start at login: register the installed app with the operating system, or remove the registration.

- Windows: a value in HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run (one command line).
- macOS: a LaunchAgent plist in ~/Library/LaunchAgents with RunAtLoad (an argument array: no quoting).
- Linux and other XDG desktops: $XDG_CONFIG_HOME/autostart/sendergate-desktop.desktop.

The registration itself is the setting: nothing in the app's settings file can drift from it.
No Qt here, so the command line and the files can be checked without a display.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "SenderGate"
AGENT_LABEL = "org.sendergate.desktop"
DESKTOP_FILE = "sendergate-desktop.desktop"
AUTOSTART_ARG = "--autostart"  # tells the app it was started at login (app.py: start in the tray)

# Desktop Entry Specification, "The Exec key": an argument holding one of these must be quoted
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


class AutostartError(Exception):
    """The registration could not be written or removed; the message says where and why."""


def launch_command(executable: str | None = None, frozen: bool | None = None, platform: str | None = None) -> list[str]:
    """The installed app as the OS should start it: the bundle's own executable (PyInstaller), else this
    interpreter running the app's module (pythonw.exe on Windows, so no console window opens)."""
    executable = executable or sys.executable
    frozen = getattr(sys, "frozen", False) if frozen is None else frozen
    platform = platform or sys.platform
    if frozen:
        return [executable, AUTOSTART_ARG]
    if platform == "win32":
        windowless = Path(executable).with_name("pythonw.exe")
        if Path(executable).name.lower() == "python.exe" and windowless.exists():
            executable = str(windowless)
    return [executable, "-m", "sendergate.desktop.app", AUTOSTART_ARG]


def windows_command_line(args: Sequence[str]) -> str:
    """One Run-key command line; paths with spaces are quoted the way Windows programs parse them."""
    return subprocess.list2cmdline(list(args))


def desktop_exec(args: Sequence[str]) -> str:
    """The Exec value of a .desktop file: each argument quoted per the Desktop Entry Specification, then
    the string value's own escaping (a backslash is written twice more), "%" doubled (field codes)."""
    out = []
    for arg in args:
        if any(ch in arg for ch in "\n\r"):
            raise AutostartError(f"a line break in the command cannot be registered: {arg!r}")
        if arg and not (_RESERVED & set(arg)):
            quoted = arg
        else:
            quoted = '"' + "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg) + '"'
        out.append(quoted.replace("\\", "\\\\").replace("%", "%%"))
    return " ".join(out)


def parse_desktop_exec(value: str) -> list[str]:
    """The arguments of an Exec value (the inverse of desktop_exec; tests and is_registered use it)."""
    value = value.replace("\\\\", "\\")  # the string value's own escaping (the only one we write)
    args: list[str] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] == " ":
            i += 1
            continue
        current = ""
        if value[i] == '"':
            i += 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                current += value[i]
                i += 1
            i += 1
        else:
            while i < n and value[i] != " ":
                current += value[i]
                i += 1
        args.append(current.replace("%%", "%"))
    return args


class Autostart:
    """The registration on one platform. Tests pass `platform`, `home`, `environ` and a `winreg` stand-in."""

    def __init__(self, platform: str | None = None, *, home: Path | None = None,
                 environ: dict[str, str] | None = None, winreg: Any = None,
                 command: Sequence[str] | None = None) -> None:
        self.platform = platform or sys.platform
        self.home = home if home is not None else Path.home()
        self.environ = os.environ if environ is None else environ
        self._winreg = winreg
        self.command = list(command) if command is not None else launch_command(platform=self.platform)

    # -- where --
    @property
    def kind(self) -> str:
        if self.platform == "win32":
            return "windows"
        if self.platform == "darwin":
            return "macos"
        return "xdg"

    def location(self) -> str:
        """Where the registration lives, for messages."""
        if self.kind == "windows":
            return "HKEY_CURRENT_USER\\" + RUN_KEY + " (" + RUN_VALUE + ")"
        return str(self.plist_path() if self.kind == "macos" else self.desktop_path())

    def plist_path(self) -> Path:
        return self.home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"

    def desktop_path(self) -> Path:
        # XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and must be ignored
        base = self.environ.get("XDG_CONFIG_HOME", "")
        config = Path(base) if base and os.path.isabs(base) else self.home / ".config"
        return config / "autostart" / DESKTOP_FILE

    def _reg(self) -> Any:
        if self._winreg is None:
            import winreg  # only on Windows
            self._winreg = winreg
        return self._winreg

    # -- what --
    def desktop_entry(self) -> str:
        return ("[Desktop Entry]\n"
                "Type=Application\n"
                "Name=SenderGate\n"
                "Comment=Approve or deny senders your mail gateway refused\n"
                f"Exec={desktop_exec(self.command)}\n"
                "Terminal=false\n"
                "X-GNOME-Autostart-enabled=true\n")

    def launch_agent(self) -> dict[str, Any]:
        return {"Label": AGENT_LABEL, "ProgramArguments": list(self.command), "RunAtLoad": True,
                "ProcessType": "Interactive", "LimitLoadToSessionType": "Aqua"}

    # -- state --
    def registered_command(self) -> list[str] | None:
        """The command the OS will start at login, or None when nothing of ours is registered."""
        try:
            if self.kind == "windows":
                reg = self._reg()
                with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_READ) as key:
                    value, _type = reg.QueryValueEx(key, RUN_VALUE)
                return [str(value)]
            if self.kind == "macos":
                with open(self.plist_path(), "rb") as f:
                    return [str(a) for a in plistlib.load(f).get("ProgramArguments", [])]
            lines = self.desktop_path().read_text(encoding="utf-8").splitlines()
            # a session's own settings turn an entry off this way (it stays, but nothing starts)
            if {"Hidden=true", "X-GNOME-Autostart-enabled=false"} & {ln.strip() for ln in lines}:
                return None
            return next((parse_desktop_exec(ln[len("Exec="):]) for ln in lines if ln.startswith("Exec=")), [])
        except (OSError, ValueError, plistlib.InvalidFileException):
            return None

    def is_enabled(self) -> bool:
        return self.registered_command() is not None

    def set_enabled(self, on: bool) -> None:
        try:
            if on:
                self._register()
            else:
                self._unregister()
        except OSError as exc:
            raise AutostartError(f"{self.location()}: {exc.strerror or exc}") from exc

    def _register(self) -> None:
        if self.kind == "windows":
            reg = self._reg()
            with reg.CreateKeyEx(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
                reg.SetValueEx(key, RUN_VALUE, 0, reg.REG_SZ, windows_command_line(self.command))
            return
        if self.kind == "macos":
            data = plistlib.dumps(self.launch_agent())
            path = self.plist_path()
        else:
            data = self.desktop_entry().encode("utf-8")
            path = self.desktop_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a half-written file never starts anything at login

    def _unregister(self) -> None:
        if self.kind == "windows":
            reg = self._reg()
            try:
                with reg.OpenKey(reg.HKEY_CURRENT_USER, RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
                    reg.DeleteValue(key, RUN_VALUE)
            except FileNotFoundError:
                pass  # nothing registered: already off
            return
        path = self.plist_path() if self.kind == "macos" else self.desktop_path()
        path.unlink(missing_ok=True)

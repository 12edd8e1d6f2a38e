"""Start at login (issue 17 item 5): the registration on each platform, and turning it off removes it.

Linux is tested for real: the XDG autostart entry is written under a temporary XDG_CONFIG_HOME, checked
by desktop-file-validate and started by GLib's `gio launch` (the Desktop Entry parser a session's
autostart uses), which must run exactly the registered arguments — paths with spaces, quotes, `$`, `%`.
Windows and macOS cannot run here: the Run key goes through a stand-in for `winreg` (same calls, a
dict), the LaunchAgent into a temporary HOME, read back with plistlib.
"""

from __future__ import annotations

import json
import plistlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sendergate.desktop.autostart import (
    AGENT_LABEL,
    RUN_KEY,
    RUN_VALUE,
    Autostart,
    AutostartError,
    launch_command,
)

# a recorder: writes the arguments it got to the file named first
RECORDER = "import json, sys\nopen(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))\n"
AWKWARD = ["100%", 'say "hi"', "back\\slash", "$HOME", "it's", "a;b", "--autostart"]


def recorder_command(tmp_path: Path) -> tuple[list[str], Path]:
    where = tmp_path / "Program Files $x" / "Sender Gate"
    where.mkdir(parents=True)
    script = where / "start me.py"
    script.write_text(RECORDER)
    out = tmp_path / "argv.json"
    return [sys.executable, str(script), str(out), *AWKWARD], out


def test_the_xdg_autostart_entry_is_valid_and_a_session_starts_exactly_the_registered_command(tmp_path: Path) -> None:
    missing = [t for t in ("desktop-file-validate", "gio") if shutil.which(t) is None]
    assert not missing, f"{missing}: desktop-file-utils and libglib2.0-bin (installer/dev/system-deps.sh test)"
    command, out = recorder_command(tmp_path)
    config = tmp_path / "xdg config"
    auto = Autostart("linux", home=tmp_path / "home", environ={"XDG_CONFIG_HOME": str(config)}, command=command)
    assert not auto.is_enabled()  # off by default: nothing registered
    auto.set_enabled(True)
    entry = config / "autostart" / "sendergate-desktop.desktop"
    assert auto.desktop_path() == entry and entry.is_file()
    assert not (tmp_path / "home").exists()  # XDG_CONFIG_HOME honoured, ~/.config untouched
    check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
    assert auto.is_enabled() and auto.registered_command() == command

    subprocess.run(["gio", "launch", str(entry)], check=True, timeout=30, capture_output=True)
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # the recorder writes in one call; let it finish
    assert json.loads(out.read_text()) == [*AWKWARD]  # every argument arrived whole and unchanged

    auto.set_enabled(False)
    assert not entry.exists() and not auto.is_enabled()
    auto.set_enabled(False)  # already off: nothing to do, no error


def test_xdg_config_home_defaults_to_dot_config_and_a_relative_one_is_ignored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for environ in ({}, {"XDG_CONFIG_HOME": ""}, {"XDG_CONFIG_HOME": "relative/dir"}):
        auto = Autostart("linux", home=home, environ=environ, command=["/usr/bin/sendergate-desktop"])
        assert auto.desktop_path() == home / ".config" / "autostart" / "sendergate-desktop.desktop"
    auto.set_enabled(True)
    assert (home / ".config" / "autostart" / "sendergate-desktop.desktop").is_file()


def test_an_entry_the_session_turned_off_shows_as_off_and_turning_on_replaces_it(tmp_path: Path) -> None:
    auto = Autostart("linux", home=tmp_path, environ={}, command=["/opt/sendergate/SenderGate", "--autostart"])
    auto.set_enabled(True)
    path = auto.desktop_path()
    path.write_text(path.read_text().replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"))
    assert not auto.is_enabled()  # GNOME's "startup applications" switch turned it off
    auto.set_enabled(True)
    assert auto.is_enabled() and "X-GNOME-Autostart-enabled=true" in path.read_text()
    path.write_text(path.read_text() + "Hidden=true\n")
    assert not auto.is_enabled()


def test_a_registration_that_cannot_be_written_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "not a directory"
    blocker.write_text("")
    auto = Autostart("linux", home=tmp_path, environ={"XDG_CONFIG_HOME": str(blocker)}, command=["x"])
    with pytest.raises(AutostartError) as err:
        auto.set_enabled(True)
    assert str(blocker) in str(err.value)
    assert not auto.is_enabled()


def test_a_line_break_in_the_command_is_refused_not_split_into_two_entries(tmp_path: Path) -> None:
    auto = Autostart("linux", home=tmp_path, environ={}, command=["/opt/app", "x\nExec=/bin/evil"])
    with pytest.raises(AutostartError):
        auto.set_enabled(True)
    assert not auto.desktop_path().exists()


class FakeWinreg:
    """Stand-in for Windows' winreg (cannot run here): the calls autostart.py makes, over a dict."""

    HKEY_CURRENT_USER = "HKCU"
    KEY_READ, KEY_SET_VALUE, REG_SZ = 1, 2, 1

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], dict[str, tuple[Any, int]]] = {}

    class _Key:
        def __init__(self, values: dict[str, tuple[Any, int]]) -> None:
            self.values = values

        def __enter__(self) -> FakeWinreg._Key:
            return self

        def __exit__(self, *_: object) -> None:
            pass

    def OpenKey(self, root: str, path: str, reserved: int, access: int) -> _Key:
        if (root, path) not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return self._Key(self.keys[(root, path)])

    def CreateKeyEx(self, root: str, path: str, reserved: int, access: int) -> _Key:
        return self._Key(self.keys.setdefault((root, path), {}))

    def SetValueEx(self, key: _Key, name: str, reserved: int, kind: int, value: Any) -> None:
        key.values[name] = (value, kind)

    def QueryValueEx(self, key: _Key, name: str) -> tuple[Any, int]:
        if name not in key.values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return key.values[name]

    def DeleteValue(self, key: _Key, name: str) -> None:
        if name not in key.values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        del key.values[name]


def windows_argv(line: str) -> list[str]:
    """How the Microsoft C runtime splits a command line (the rules list2cmdline writes for)."""
    args: list[str] = []
    current, quoted, has_arg, i = "", False, False, 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                current += "\\" * (n // 2)
                if n % 2:
                    current += '"'
                    i += n + 1
                else:
                    i += n
                has_arg = True
                continue
            current += "\\" * n
            i += n
            has_arg = True
            continue
        if ch == '"':
            quoted, has_arg = not quoted, True
        elif ch in " \t" and not quoted:
            if has_arg:
                args.append(current)
            current, has_arg = "", False
        else:
            current += ch
            has_arg = True
        i += 1
    if has_arg:
        args.append(current)
    return args


def test_windows_run_key_through_a_winreg_stand_in() -> None:
    reg = FakeWinreg()
    command = [r"C:\Program Files\SenderGate\SenderGate.exe", "--autostart", r"C:\Users\Ann Lee\trailing\\"]
    auto = Autostart("win32", winreg=reg, command=command)
    assert not auto.is_enabled()
    auto.set_enabled(True)
    value, kind = reg.keys[("HKCU", RUN_KEY)][RUN_VALUE]
    assert kind == reg.REG_SZ
    assert value.startswith('"C:\\Program Files\\SenderGate\\SenderGate.exe" ')  # the path with spaces quoted
    assert windows_argv(value) == command
    assert auto.is_enabled()
    auto.set_enabled(False)
    assert RUN_VALUE not in reg.keys[("HKCU", RUN_KEY)] and not auto.is_enabled()
    auto.set_enabled(False)  # already off


def test_macos_launch_agent_in_a_temporary_home(tmp_path: Path) -> None:
    command = ["/Applications/Sender Gate.app/Contents/MacOS/SenderGate", "--autostart"]
    auto = Autostart("darwin", home=tmp_path, command=command)
    assert not auto.is_enabled()
    auto.set_enabled(True)
    path = tmp_path / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"
    with open(path, "rb") as f:
        agent = plistlib.load(f)
    # an argument array, not a shell line: the space needs no quoting
    assert agent["Label"] == AGENT_LABEL and agent["ProgramArguments"] == command and agent["RunAtLoad"] is True
    assert auto.registered_command() == command
    auto.set_enabled(False)
    assert not path.exists() and not auto.is_enabled()


def test_the_command_is_the_installed_app() -> None:
    bundle = "/opt/Sender Gate/SenderGate"
    assert launch_command(bundle, frozen=True, platform="linux") == [bundle, "--autostart"]
    # from source: this interpreter with the app's module, which must really start the app
    command = launch_command(sys.executable, frozen=False, platform="linux")
    assert command[:3] == [sys.executable, "-m", "sendergate.desktop.app"]
    run = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "sendergate-desktop" in run.stdout, run
    helped = subprocess.run([*command[:3], "--help"], capture_output=True, text=True, timeout=60)
    assert "--autostart" in helped.stdout

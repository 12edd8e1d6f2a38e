"""`sendergate demo`, the README's first command, as a user runs it: a real process with its gateway
child and (offscreen) the desktop app; it must show seeded activity, take mail, and leave nothing
behind however it is stopped."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # the demo's processes and the desktop app: 7 to 27 s each

STARTUP_TIMEOUT = 90  # seeding ~500 events and starting a gateway on a busy 2-core machine


class Demo:
    def __init__(self, tmp: Path, *args: str) -> None:
        env = dict(os.environ, TMPDIR=str(tmp), QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
        env.pop("SENDERGATE_METRICS_DIR", None)
        self.tmp = tmp
        self.proc = subprocess.Popen([sys.executable, "-m", "sendergate", "demo", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of output

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output:
                if m := re.search(pattern, line):
                    return m
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None or time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} from the demo; it said:\n" + "".join(self.output))
            self.output.append(line)

    def gateways(self) -> list[int]:
        return self.gateways_under(self.tmp)

    @staticmethod
    def gateways_under(tmp: Path) -> list[int]:
        """Gateway processes whose config lies in this temporary directory."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"gateway" in cmd and any(part.startswith(str(tmp).encode()) for part in cmd):
                    found.append(int(entry.name))
        return found

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.tmp.iterdir() if p.name.startswith("sendergate-demo"))

    def stop(self, number: int) -> int:
        self.proc.send_signal(number)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def demo_tmp(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "tmp"
    d.mkdir()
    yield d
    for pid in Demo.gateways_under(d):  # a failed test must not leave a gateway running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_demo_without_desktop_serves_seeded_activity_and_takes_mail(demo_tmp: Path) -> None:
    demo = Demo(demo_tmp, "--no-desktop")
    try:
        http = demo.wait_for(r"gateway SMTP 127\.0\.0\.1:(\d+), HTTP (http://\S+)")
        token = demo.wait_for(r"API token (\S+)").group(1)
        demo.wait_for(r"running; press Ctrl-C to stop")
        api = httpx.Client(base_url=http.group(2), headers={"Authorization": f"Bearer {token}"}, timeout=30)
        events = api.get("/api/v1/events", params={"limit": 500}).json()["items"]
        assert len(events) >= 400 and len({e["verdict"] for e in events}) >= 4  # a month of varied activity
        assert api.get("/api/v1/challenges").json()["items"]  # some senders are waiting
        before = api.get("/api/v1/events", params={"limit": 1}).json()["items"][0]["id"]
        with smtplib.SMTP("127.0.0.1", int(http.group(1)), timeout=30) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("stranger@elsewhere.test", ["alice@example.org"],
                              b"From: stranger@elsewhere.test\r\nSubject: hi\r\n\r\nhello\r\n")
        assert refused.value.smtp_code == 550 and b"/c/" in refused.value.smtp_error  # the challenge link
        newest = api.get("/api/v1/events", params={"limit": 1}).json()["items"][0]
        assert newest["id"] > before and newest["verdict"] == "challenged"
        assert demo.gateways()
    finally:
        code = demo.stop(signal.SIGINT)
    assert code == 0
    assert demo.gateways() == [] and demo.leftovers() == []


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_demo_with_the_desktop_app_stops_cleanly_on_a_signal(demo_tmp: Path, number: int) -> None:
    demo = Demo(demo_tmp)
    try:
        demo.wait_for(r"the desktop app is open")
        assert demo.gateways() and any(p.startswith("sendergate-demo-ui") for p in demo.leftovers())
    finally:
        code = demo.stop(number)
    assert code == 0, "".join(demo.output)
    assert demo.gateways() == [] and demo.leftovers() == []


def test_demo_stopped_while_starting_leaves_nothing(demo_tmp: Path) -> None:
    demo = Demo(demo_tmp, "--no-desktop")
    try:
        demo.wait_for(r"seeded \d+ events")  # the gateway is starting or about to
    finally:
        code = demo.stop(signal.SIGTERM)
    assert code in (0, 128 + signal.SIGTERM)
    assert demo.gateways() == [] and demo.leftovers() == []

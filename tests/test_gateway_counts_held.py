"""What a worker holds back to save CPU per message (issue 18 item 1) still reaches the operator, against a
real gateway with two workers: the SMTP counts a worker adds to /metrics every metrics.FLUSH_EVERY, and the
decision lines it writes without a LogRecord. A scrape sees every message, and a worker stopped right
after its last message (SIGTERM, as at a deploy; the supervisor starts it again) has written its counts
and its lines before it ended."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from tests.support.gateway import GatewayProcess

N = 12
MESSAGE = b"From: s@far.test\r\nTo: alice@example.org\r\nSubject: counts\r\n\r\nHello.\r\n"


def metric(text: str, name: str) -> float:
    line = next((ln for ln in text.splitlines() if ln.startswith(name + " ")), None)
    assert line is not None, f"{name} not in /metrics:\n{text}"
    return float(line.split()[-1])


def refuse(gw: GatewayProcess, n: int) -> None:
    for i in range(n):
        with gw.smtp() as s:
            s.mail(f"s{i}@far.test")
            s.rcpt("alice@example.org")
            code, reply = s.data(MESSAGE)
            assert code == 550 and b"/c/" in reply


def test_a_scrape_sees_every_message_of_both_workers() -> None:
    with GatewayProcess(workers=2, extra={"http": {"metrics_public": True}}) as gw:
        gw.store.add_user("alice@example.org")
        refuse(gw, N)
        deadline = time.monotonic() + 5
        while True:  # the other worker's last counts reach the shared files within FLUSH_EVERY (0.1 s)
            text = httpx.get(gw.http_url + "/metrics", timeout=10).text
            if metric(text, 'sendergate_smtp_verdicts_total{verdict="challenged"}') >= N or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert metric(text, 'sendergate_smtp_verdicts_total{verdict="challenged"}') == N
        assert metric(text, "sendergate_smtp_data_seconds_count") == N
        assert metric(text, 'sendergate_smtp_data_seconds_bucket{le="+Inf"}') == N
        assert metric(text, "sendergate_smtp_data_seconds_sum") > 0
        assert metric(text, "sendergate_smtp_sessions_total") >= N


def test_a_worker_stopped_at_once_has_written_its_counts_and_lines() -> None:
    with GatewayProcess(workers=2, extra={"http": {"metrics_public": True}}) as gw:
        gw.store.add_user("alice@example.org")
        assert gw.proc is not None
        refuse(gw, N)
        # at once, well within FLUSH_EVERY of the last message: whatever each worker holds is still held
        workers = subprocess.run(["pgrep", "-P", str(gw.proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        for pid in workers:
            os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 20
        while gw.read_log().count("sendergate: worker") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # both started again by the supervisor
        assert gw.read_log().count("sendergate: worker") >= 4, gw.read_log()[-3000:]
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(gw.http_url + "/metrics", timeout=10).text
                break
            except httpx.TransportError:  # worker 0's HTTP listener comes back with it
                time.sleep(0.05)
        assert metric(text, 'sendergate_smtp_verdicts_total{verdict="challenged"}') == N
        assert metric(text, "sendergate_smtp_data_seconds_count") == N
        lines = [ln for ln in gw.read_log().splitlines() if "sendergate.decision: decision verdict=challenged" in ln]
        assert sorted(ln.split(" sender=")[1].split()[0] for ln in lines) == sorted(f"s{i}@far.test" for i in range(N))

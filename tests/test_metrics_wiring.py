"""What reaches /metrics from the scanners and the confirmation page, against a real gateway and clamd:
one scan timing per scanned message (Scanners.observe), one count per solved CAPTCHA."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx

from sendergate.web.confirm import expected_answer
from tests.support.gateway import GatewayProcess
from tests.support.scanners import start_clamd


def metric(gw: GatewayProcess, name: str) -> float:
    text = httpx.get(gw.http_url + "/metrics", timeout=10).text
    line = next((ln for ln in text.splitlines() if ln.startswith(name + " ")), None)
    assert line is not None, f"{name} not in /metrics:\n{text}"
    return float(line.split()[-1])


def test_scan_timings_and_confirmations_reach_metrics() -> None:
    clamd = start_clamd()
    try:
        with GatewayProcess(extra={"scan": {"clamd": clamd.unix_spec}, "http": {"metrics_public": True}}) as gw:
            user, _ = gw.store.add_user("alice@example.org")
            gw.store.add_entry(user.id, "allow", "friend@sender.test")
            for i in range(3):
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "friend@sender.test", "alice@example.org", f"Hello {i}"
                msg.set_content("Nothing to see here.\n")
                with gw.smtp() as s:
                    s.sendmail("friend@sender.test", ["alice@example.org"], msg.as_bytes())
            assert metric(gw, 'sendergate_scan_seconds_count{scanner="clamd"}') == 3
            assert metric(gw, 'sendergate_scan_seconds_sum{scanner="clamd"}') > 0

            _, token = gw.store.open_challenge(user.id, "alice@example.org", "stranger@far.test", ttl=3600)
            http = httpx.Client(base_url=gw.http_url, timeout=10)
            page = http.get(f"/c/{token}").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            nonce = re.search(r'name="nonce" value="([^"]+)"', page)
            assert csrf and nonce, page
            fields = {"csrf": csrf.group(1), "nonce": nonce.group(1)}
            answer = expected_answer(gw.store, token, nonce.group(1))
            wrong = f"{(int(answer) + 1) % 10**6:06d}"
            assert http.post(f"/c/{token}", data={**fields, "answer": wrong}).status_code == 400
            assert metric(gw, "sendergate_challenge_confirmations_total") == 0
            page = http.get(f"/c/{token}").text  # a wrong answer retires the CAPTCHA: a new one
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            nonce = re.search(r'name="nonce" value="([^"]+)"', page)
            assert csrf and nonce, page
            fields = {"csrf": csrf.group(1), "nonce": nonce.group(1)}
            answer = expected_answer(gw.store, token, nonce.group(1))
            assert http.post(f"/c/{token}", data={**fields, "answer": answer}).status_code == 200
            assert metric(gw, "sendergate_challenge_confirmations_total") == 1
            # the same link again: already confirmed, not counted twice
            assert http.post(f"/c/{token}", data={**fields, "answer": answer}).status_code == 200
            assert metric(gw, "sendergate_challenge_confirmations_total") == 1
    finally:
        clamd.stop()

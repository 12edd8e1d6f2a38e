"""`sendergate demo`: a gateway on loopback with a fresh store, a demo user and a month of
realistic activity, and the desktop app connected to it."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .policy.decide import EventRecord, Verdict
from .store import Store

DEMO_USER = "alice@example.org"

KNOWN = [("Bob Marsh", "bob@marsh-family.example"), ("Dr. Ines Okafor", "ines.okafor@clinic.example"),
         ("Priya Raman", "priya@raman-design.example"), ("Tom Becker", "tom.becker@fastmail.example"),
         ("Accounting", "ap@supplier-gmbh.example"), ("Lena Vogel", "lena@vogel.example")]
STRANGERS = [("Chris Walden", "chris.walden@startup.example", "Partnership opportunity"),
             ("Maria Lopez", "m.lopez@university.example", "Question about your article"),
             ("Jon Park", "jon@park-photography.example", "Wedding photos — final selection"),
             ("Recruiting Team", "talent@bigcorp.example", "Exciting role for you"),
             ("Sam Ortiz", "sam.ortiz@neighbours.example", "Street party on Saturday"),
             ("Hannah Kim", "hannah@kim-law.example", "Re: lease agreement")]
AUTOMATED = [("orders@shop.example", "Your order #48213 has shipped", "screened"),
             ("no-reply@bank.example", "Your monthly statement is ready", "screened"),
             ("newsletter@gardening.example", "10 things to plant in December", "bulk"),
             ("notifications@social.example", "You have 3 new followers", "bulk"),
             ("billing@hosting.example", "Invoice INV-2291", "screened")]
SPAM = [("winner@lottery-prize.example", "You have WON 1,000,000", 23.4),
        ("pharmacy@cheap-meds.example", "Best prices online", 14.1),
        ("crypto@moon-coin.example", "Double your bitcoin", 9.7)]
VIRUS = [("invoice@fake-dhl.example", "DHL delivery failed — see attachment", "Win.Trojan.Emotet-9953")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(store: Store, user_id: int, *, days: int = 30, rng: random.Random | None = None) -> int:
    """A month of one person's mail: mostly known senders, some strangers, automated mail, spam."""
    rng = rng or random.Random(7)
    now = datetime.now(timezone.utc)
    for name, addr in KNOWN:
        store.add_entry(user_id, "allow", addr, source=rng.choice(["import", "manual", "confirmed"]), note=name)
    store.add_entry(user_id, "allow", "@school.example", source="manual", note="Kids' school")
    store.add_entry(user_id, "allow", "list:gardeners.lists.example.net", source="manual", note="Gardening club")
    store.add_entry(user_id, "block", "@cheap-meds.example", source="manual", note="")
    store.add_entry(user_id, "block", "crypto@moon-coin.example", source="manual", note="")
    events: list[EventRecord] = []

    def ip() -> str:
        return f"198.51.100.{rng.randint(2, 250)}"  # documentation range, never contacted

    for day in range(days, -1, -1):
        base = now - timedelta(days=day)
        for _ in range(rng.randint(4, 12)):
            name, addr = rng.choice(KNOWN)
            events.append(EventRecord(ts=base - timedelta(minutes=rng.randint(0, 1400)), verdict=Verdict.DELIVERED,
                                      reason="allowlisted sender", client_ip=ip(), helo="mail.example",
                                      sender=addr, recipient=DEMO_USER, user_id=user_id,
                                      subject=rng.choice(["Lunch on Friday?", "Photos from the weekend",
                                                          "Re: your question", "Invoice attached",
                                                          "Meeting notes", "Happy birthday!"]),
                                      from_header=f"{name} <{addr}>", size=rng.randint(2_000, 90_000)))
        for _ in range(rng.randint(0, 3)):
            addr, subject, verdict = rng.choice(AUTOMATED)
            events.append(EventRecord(ts=base - timedelta(minutes=rng.randint(0, 1400)), verdict=Verdict(verdict),
                                      reason="automated (machine role)" + (", DKIM-signed" if verdict == "screened"
                                                                            else "; no aligned DKIM signature"),
                                      client_ip=ip(), helo="out.mailer.example", sender=addr, recipient=DEMO_USER,
                                      user_id=user_id, subject=subject, from_header=addr,
                                      size=rng.randint(10_000, 60_000)))
        for _ in range(rng.randint(1, 6)):
            addr, subject, score = rng.choice(SPAM)
            events.append(EventRecord(ts=base - timedelta(minutes=rng.randint(0, 1400)), verdict=Verdict.SPAM,
                                      reason=f"spam score {score} >= 5", client_ip=ip(), helo="bulk.example",
                                      sender=addr, recipient=DEMO_USER, user_id=user_id, subject=subject,
                                      from_header=addr, spam_score=score, size=rng.randint(3_000, 20_000)))
        if rng.random() < 0.4:
            addr, subject, virus = VIRUS[0]
            events.append(EventRecord(ts=base - timedelta(minutes=rng.randint(0, 1400)), verdict=Verdict.VIRUS,
                                      reason=f"virus {virus}", client_ip=ip(), helo="infected.example", sender=addr,
                                      recipient=DEMO_USER, user_id=user_id, subject=subject, from_header=addr,
                                      virus=virus, size=rng.randint(40_000, 200_000)))
        for _ in range(rng.randint(0, 4)):
            events.append(EventRecord(ts=base - timedelta(minutes=rng.randint(0, 1400)),
                                      verdict=rng.choice([Verdict.RELAY_DENIED, Verdict.UNKNOWN_RECIPIENT]),
                                      reason="dictionary attack", client_ip=ip(), helo="scanner.example",
                                      sender=f"{rng.choice(['admin', 'info', 'sales'])}@spammy.example",
                                      recipient=rng.choice(["postmaster@example.org", "sales@example.org",
                                                            "root@example.net"])))
    for name, addr, subject in STRANGERS:
        cid, _ = store.open_challenge(user_id, DEMO_USER, addr, ttl=14 * 86400, subject=subject,
                                      client_ip="203.0.113.9")
        for _ in range(rng.randint(1, 3)):
            events.append(EventRecord(ts=now - timedelta(hours=rng.randint(1, 100)), verdict=Verdict.CHALLENGED,
                                      reason="unknown sender", client_ip="203.0.113.9", helo="mail.example",
                                      sender=addr, recipient=DEMO_USER, user_id=user_id, subject=subject,
                                      from_header=f"{name} <{addr}>", challenge_id=cid,
                                      size=rng.randint(2_000, 30_000)))
    events.sort(key=lambda e: e.ts)
    store.add_events(events)
    return len(events)


def _write_config(path: Path, smtp_port: int, http_port: int, state: Path) -> None:
    maildir = state / "maildir"
    path.write_text(f"""# SenderGate demo configuration (loopback only)
[smtp]
listen = ["127.0.0.1:{smtp_port}"]
hostname = "mx.example.org"
workers = 1

[domains]
local = ["example.org"]

[delivery]
mode = "maildir"
target = "{maildir}"
screened_folder = "Screened"

[http]
listen = "127.0.0.1:{http_port}"
public_url = "http://127.0.0.1:{http_port}"
metrics_public = true  # a demo on loopback: the API docs it prints open in a browser

[store]
url = "sqlite:///{state / 'state.db'}"

[challenge]
allowlist_auth = "off"

[dns]
nameservers = ["127.0.0.1:9"]
timeout = "1s"
""")


def _live_traffic(smtp_port: int) -> None:
    """A few real SMTP transactions, so the demo's newest events came through the gateway itself."""
    msgs = [("bob@marsh-family.example", "Dinner tonight?"), ("new.client@agency.example", "Quote request"),
            ("no-reply@shop.example", "Your parcel is on its way")]
    for sender, subject in msgs:
        try:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
                s.sendmail(sender, [DEMO_USER], f"From: {sender}\r\nTo: {DEMO_USER}\r\nSubject: {subject}\r\n"
                           f"Message-ID: <{time.time_ns()}@demo>\r\n\r\nHello from the demo.\r\n")
        except smtplib.SMTPException:
            pass  # refusals are the point: they become events


def _exit_on_signal(number: int, _frame: object) -> None:
    raise SystemExit(128 + number)  # unwinds through run_demo's cleanup, like Ctrl-C does


def run_demo(args: argparse.Namespace) -> int:
    """Gateway and app until the app is closed, Ctrl-C, SIGTERM or SIGHUP; then both are gone, and so is
    the state directory unless it was given with --dir."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_signal)
    state = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sendergate-demo-"))
    gw: subprocess.Popen[bytes] | None = None
    log = None
    try:
        state.mkdir(parents=True, exist_ok=True)
        smtp_port = args.smtp_port or _free_port()
        http_port = args.http_port or _free_port()
        config = state / "sendergate.toml"
        _write_config(config, smtp_port, http_port, state)
        store = Store(f"sqlite:///{state / 'state.db'}")
        store.migrate()
        try:
            user = store.user_by_address(DEMO_USER)
            token = store.rotate_token(DEMO_USER)
        except Exception:  # noqa: BLE001 - a fresh store: create and seed the demo user
            user, token = store.add_user(DEMO_USER, name="Alice (demo)")
            n = seed(store, user.id)
            print(f"sendergate demo: seeded {n} events for {DEMO_USER}", flush=True)
        store.close()
        log = open(state / "gateway.log", "ab")
        gw = subprocess.Popen([sys.executable, "-m", "sendergate", "gateway", "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if gw.poll() is not None:
                print(f"sendergate: the demo gateway stopped; see {state / 'gateway.log'}", file=sys.stderr)
                return 1
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.5).close()
                socket.create_connection(("127.0.0.1", smtp_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("sendergate: the demo gateway did not start within 20 s", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        _live_traffic(smtp_port)
        url = f"http://127.0.0.1:{http_port}"
        print(f"sendergate demo: gateway SMTP 127.0.0.1:{smtp_port}, HTTP {url} (API docs: {url}/docs)")
        print(f"sendergate demo: user {DEMO_USER}, API token {token}")
        print(f"sendergate demo: state in {state}", flush=True)
        if args.no_desktop:
            print("sendergate demo: running; press Ctrl-C to stop", flush=True)
            try:
                while gw.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            return 0
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
                or sys.platform in ("win32", "darwin")):
            print("sendergate: no display found for the desktop app; run with --no-desktop, or under xvfb-run",
                  file=sys.stderr)
            return 1
        from .desktop.app import run_connected
        return run_connected(url, token, on_running=lambda: print(
            "sendergate demo: the desktop app is open; close it or press Ctrl-C to stop", flush=True))
    finally:
        if gw is not None and gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(20)
            except subprocess.TimeoutExpired:
                gw.kill()
        if log is not None:
            log.close()
        if not args.dir:
            shutil.rmtree(state, ignore_errors=True)

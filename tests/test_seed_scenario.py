"""The seed scenario, end to end, with real components on loopback (SPEC §4.2 item 4, §5).

    sender@sender.test ─submit─▶ Postfix (the sender's provider) ─SMTP─▶ gateway: 550 5.7.1 … <link>
    Postfix bounces to sender@sender.test ─▶ the test reads the link from the bounce
    Chromium opens the link, a wrong answer is refused, the right one confirms
    sender sends again ─▶ Postfix ─▶ gateway ─LMTP─▶ Dovecot ─IMAP─▶ alice's INBOX, body byte-identical

Also saves the screenshots that resources/docs/confirmation-page.md shows.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import select

from sendergate.store import schema
from sendergate.web.confirm import expected_answer
from tests.support.common import ServiceError
from tests.support.dovecot import DovecotServer
from tests.support.gateway import GatewayProcess, write_config
from tests.support.postfix import PostfixInstance, unfold

pytestmark = pytest.mark.slow  # Postfix, Dovecot and a gateway through a whole confirmation: about 30 s

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync"]
# The docs' screenshots are refreshed only on request (`SENDERGATE_SCREENSHOTS=1 bash tests/run.sh
# tests/test_seed_scenario.py`): the CAPTCHA is random, so every run would change them.
SCREENSHOTS = (Path(__file__).resolve().parent.parent / "resources" / "docs" / "screenshots"
               if os.environ.get("SENDERGATE_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "sendergate-screenshots")
SENDER = "sender@sender.test"
ALICE = "alice@example.org"
BODY = ("Hello Alice,\r\n\r\nwe met at the conference; here are the slides I promised.\r\n"
        "Grüße, and a line with trailing spaces   \r\n.leading dot survives dot-stuffing\r\n\r\n-- \r\nSam\r\n")
MESSAGE = (f"From: Sam Sender <{SENDER}>\r\nTo: Alice <{ALICE}>\r\nSubject: Slides from the conference\r\n"
           "Message-ID: <seed-scenario-1@sender.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
           f"\r\n{BODY}").encode()


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    server.add_user(ALICE, "alice-secret")
    yield server
    server.stop()


@pytest.fixture
def gateway(dovecot: DovecotServer) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(delivery=("lmtp", f"127.0.0.1:{dovecot.lmtp_port}"))
    # Links in the refusal point at this gateway's own listener, so the browser can follow them.
    gw.sections["http"]["public_url"] = gw.http_url
    write_config(gw.config_path, gw.sections)
    gw.start()
    gw.store.add_user(ALICE)
    yield gw
    gw.close()


@pytest.fixture
def provider(gateway: GatewayProcess) -> Iterator[PostfixInstance]:
    postfix = PostfixInstance(routes={"example.org": gateway.smtp_port}, mailboxes=("sender",))
    yield postfix
    postfix.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_unknown_sender_confirms_and_sends_again(gateway: GatewayProcess, provider: PostfixInstance,
                                                 dovecot: DovecotServer, browser: Browser) -> None:
    started = time.monotonic()
    # 1. The sender writes; their provider relays to the gateway, which refuses at end of DATA.
    provider.submit(SENDER, ALICE, MESSAGE)
    bounce = unfold(provider.wait_for_bounce("sender", timeout=15)).decode("utf-8", "replace")
    said = re.search(r"said: (550 5\.7\.1 [^\n]*)", bounce)
    assert said, bounce
    assert f"{ALICE} accepts mail only from known senders" in said.group(1)
    link = re.search(rf"{re.escape(gateway.http_url)}/c/([A-Za-z0-9_-]{{22}})", said.group(1))
    assert link, said.group(1)
    url, token = link.group(0), link.group(1)
    bounced_at = time.monotonic()

    # 2. The sender opens the link in a real browser.
    console_errors: list[str] = []
    desktop = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = desktop.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Confirm that you are a person"
    assert ALICE in page.locator("p.intro").inner_text()
    assert page.locator("img.captcha").evaluate("img => img.complete && img.naturalWidth") == 280
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "confirmation-page-desktop.png"), full_page=True)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True,
                                has_touch=True, locale="de-DE")
    phone_page = phone.new_page()
    phone_page.goto(url)
    assert phone_page.locator("h1").inner_text() == "Bestätigen Sie, dass Sie ein Mensch sind"
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    phone_page.screenshot(path=str(SCREENSHOTS / "confirmation-page-phone-de.png"), full_page=True)
    phone.close()

    # 3. A wrong answer first: refused, with a new picture. (Opening the link on the phone gave the link
    # a new CAPTCHA, retiring the desktop page's: one CAPTCHA per link at a time. Reload it.)
    page.reload()
    first_nonce = page.locator("input[name=nonce]").get_attribute("value")
    answer = expected_answer(gateway.store, token, first_nonce)
    page.fill("#answer", f"{(int(answer) + 1) % 10**6:06d}")
    page.click("button[type=submit]")
    assert "That was not right" in page.locator("#notice").inner_text()
    second_nonce = page.locator("input[name=nonce]").get_attribute("value")
    assert second_nonce != first_nonce
    page.screenshot(path=str(SCREENSHOTS / "confirmation-page-wrong-answer.png"), full_page=True)
    assert _challenge(gateway, token).status == "pending"

    # 4. The right answer (read from the store, as the test cannot read pictures).
    page.fill("#answer", expected_answer(gateway.store, token, second_nonce))
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Thank you — you are confirmed"
    assert "You can now send your message again" in page.locator("p.done-body").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "confirmation-page-confirmed.png"), full_page=True)
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
    desktop.close()
    confirmed_at = time.monotonic()

    challenge = _challenge(gateway, token)
    assert challenge.status == "confirmed" and challenge.confirm_failures == 1
    with gateway.store.engine.connect() as conn:
        entries = conn.execute(select(schema.list_entries).where(schema.list_entries.c.value == SENDER)).all()
    assert [(e.action, e.source) for e in entries] == [("allow", "confirmed")]

    # 5. The sender sends again; this time it is delivered through Dovecot LMTP.
    provider.submit(SENDER, ALICE, MESSAGE)
    provider.wait_for_empty_queue(timeout=15)
    fetched = _wait_for_inbox(dovecot, timeout=10)
    delivered_at = time.monotonic()
    head, sep, body = fetched.partition(b"\r\n\r\n")
    assert sep and body == BODY.encode(), (body, BODY.encode())
    assert b"Subject: Slides from the conference" in head
    assert b"by mx.example.org (SenderGate)" in head  # the gateway's trace header

    # 6. Both attempts are in the event log, with the right verdicts.
    events = [e for e in gateway.events() if e.recipient == ALICE]
    assert [e.verdict for e in events] == ["challenged", "confirmed", "delivered"], \
        [(e.verdict, e.reason) for e in events]  # the confirmation is an event too (SPEC §4.3)
    assert events[0].challenge_id == challenge.id and events[0].sender == SENDER
    assert events[0].subject == events[1].subject == "Slides from the conference"
    assert provider.wait_for_log(
        r"to=<alice@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 2\.0\.0")
    print(f"\nseed scenario: bounce after {bounced_at - started:.2f} s, confirmed after "
          f"{confirmed_at - bounced_at:.2f} s in the browser, delivered {delivered_at - confirmed_at:.2f} s later")


def _challenge(gateway: GatewayProcess, token: str):  # type: ignore[no-untyped-def]
    row = gateway.store.challenge_by_token(token)
    assert row is not None
    return row


def _wait_for_inbox(dovecot: DovecotServer, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=10) as imap:
        imap.login(ALICE, "alice-secret")
        while True:
            imap.select_folder("INBOX", readonly=True)
            uids = imap.search("ALL")
            if uids:
                assert len(uids) == 1, uids
                return imap.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
            if time.monotonic() > deadline:
                raise ServiceError(f"nothing in alice's INBOX after {timeout} s; dovecot log:\n{dovecot.log()[-2000:]}")
            time.sleep(0.05)

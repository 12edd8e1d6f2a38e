"""The digest and its decision links (issue 16 item 4), and telling an approved sender (item 5), end to end.

Real parts: `sendergate gateway` processes refusing mail from senders who connect from their own
127.0.0.x source addresses (SPF in the loopback DNS: sender.test allows 127.0.0.2, softfails the
rest), Dovecot receiving the digest over LMTP (read back with imapclient), Debian's Chromium
(playwright) following its links, and a private Postfix as the [notify] relay delivering notices
into Maildirs of sender.test. Where a case cannot arise through SMTP (a role sender that the gateway
screens instead of challenging) the challenge is opened in the store, as the SMTP side would.
"""

from __future__ import annotations

import email
import itertools
import re
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import select

from sendergate.digest import authenticated_domain, link_secret, make_link_token, parse_link_token
from sendergate.notify import refusal
from sendergate.store import schema
from sendergate.web.confirm import expected_answer
from tests.support.dovecot import DovecotServer
from tests.support.gateway import GatewayProcess, loopback_dns, write_config
from tests.support.postfix import PostfixInstance

pytestmark = pytest.mark.slow  # Dovecot, Postfix, gateways and Chromium

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync"]
ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
PASS_IP = "127.0.0.2"  # in sender.test's SPF
SOFT_IP = "127.0.0.3"  # not in it: ~all, a softfail (challenged, link given, domain not verified)
MAX_ENTRIES = 4
NOTICE_BOXES = ("friend", "pal", "soft", "no-reply", "confirmer", "imported", "forger", "control")
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def dns() -> None:
    loopback_dns().add_txt("sender.test", f"v=spf1 ip4:{PASS_IP} ~all")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    for user in (ALICE, BOB, CAROL):
        server.add_user(user, "secret")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def relay() -> Iterator[PostfixInstance]:
    postfix = PostfixInstance(mailbox_domain="sender.test", mailboxes=NOTICE_BOXES)
    yield postfix
    postfix.stop()


def digest_gateway(dovecot: DovecotServer, relay: PostfixInstance | None = None, *, store_url: str | None = None,
                   digest: dict[str, object] | None = None) -> GatewayProcess:
    extra: dict[str, dict[str, object]] = {"challenge": {"allowlist_auth": "relaxed"},
                                           "digest": {"max_entries": MAX_ENTRIES, **(digest or {})}}
    if relay is not None:
        extra["notify"] = {"enabled": True, "relay": f"smtp://127.0.0.1:{relay.port}",
                           "sender": "postmaster@example.org"}
    gw = GatewayProcess(delivery=("lmtp", f"127.0.0.1:{dovecot.lmtp_port}"), store_url=store_url, extra=extra)
    gw.sections["http"]["public_url"] = gw.http_url  # the digest's links point at this gateway
    write_config(gw.config_path, gw.sections)
    return gw


@pytest.fixture(scope="module")
def gw(dns: None, dovecot: DovecotServer, relay: PostfixInstance) -> Iterator[GatewayProcess]:
    gw = digest_gateway(dovecot, relay)
    gw.start()
    gw.tokens = {}  # type: ignore[attr-defined]
    for user in (ALICE, BOB):
        gw.tokens[user] = gw.store.add_user(user)[1]  # type: ignore[attr-defined]
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


# -- helpers ------------------------------------------------------------------------------


def send(gw: GatewayProcess, sender: str, ip: str, *, name: str = "", subject: str = "Hello",
         rcpt: str = ALICE, extra_headers: str = "") -> tuple[int, str]:
    """One message from `ip`; the gateway's reply at end of DATA."""
    frm = f"{name} <{sender}>" if name else sender
    msgid = f"<d{next(_ids)}-{time.time_ns()}@sender.test>"
    msg = (f"From: {frm}\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n{extra_headers}"
           "\r\nHello.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, source_address=(ip, 0), timeout=20) as s:
        s.ehlo("mta.sender.test")
        s.mail(sender)
        s.rcpt(rcpt)
        code, reply = s.data(msg)
    return code, reply.decode()


def challenge_of(gw: GatewayProcess, sender: str, user: str = ALICE) -> dict[str, object]:
    uid = gw.store.user_by_address(user).id
    ch = schema.challenges.c
    with gw.store.engine.connect() as conn:
        row = conn.execute(select(schema.challenges).where(ch.sender == sender, ch.user_id == uid)
                           .order_by(ch.id.desc())).first()
    assert row is not None, f"no challenge for {sender}"
    return dict(row._mapping)


def allowed(gw: GatewayProcess, sender: str) -> list[str]:
    le = schema.list_entries.c
    with gw.store.engine.connect() as conn:
        return [r.source for r in conn.execute(select(le.source).where(le.value == sender, le.action == "allow"))]


def api(gw: GatewayProcess, user: str = ALICE) -> httpx.Client:
    return httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {gw.tokens[user]}"},  # type: ignore[attr-defined]
                        timeout=20)


def digest_send(gw: GatewayProcess, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "sendergate", "digest", "send", *args, "--config",
                          str(gw.config_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def inbox(dovecot: DovecotServer, user: str) -> list[Message]:
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as imap:
        imap.login(user, "secret")
        imap.select_folder("INBOX", readonly=True)
        uids = imap.search("ALL")
        raw = imap.fetch(uids, ["RFC822"]) if uids else {}
    return [email.message_from_bytes(raw[u][b"RFC822"]) for u in sorted(raw)]


def digests(dovecot: DovecotServer, user: str) -> list[Message]:
    return [m for m in inbox(dovecot, user) if str(m["Subject"]).startswith("SenderGate:")]


def parts(msg: Message) -> tuple[str, str]:
    text = html = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode()
        elif part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode()
    return text, html


def links_for(text: str, sender: str) -> tuple[str, str]:
    block = text[text.index(f"<{sender}>") if f"<{sender}>" in text else text.index(sender):]
    approve = re.search(r"Approve: (\S+)", block)
    deny = re.search(r"Deny:\s+(\S+)", block)
    assert approve and deny, block
    return approve.group(1), deny.group(1)


def wait_log(gw: GatewayProcess, needle: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in gw.read_log():
        assert time.monotonic() < deadline, f"{needle!r} not in the gateway log:\n{gw.read_log()[-3000:]}"
        time.sleep(0.05)


def maildir_count(relay: PostfixInstance, box: str) -> int:
    return sum(len(list((relay.mail_dir / box / sub).glob("*"))) for sub in ("new", "cur")
               if (relay.mail_dir / box / sub).is_dir())


# -- the digest ---------------------------------------------------------------------------


def test_digest_lands_in_dovecot_and_its_links_decide_only_on_the_pages_post(
        gw: GatewayProcess, dovecot: DovecotServer, relay: PostfixInstance, browser: Browser) -> None:
    assert send(gw, "friend@sender.test", PASS_IP, name="Fred Friend", subject="Lunch on Friday")[0] == 550
    assert send(gw, "soft@sender.test", SOFT_IP, name="Sam Soft", subject="Invoice <b>now</b>")[0] == 550
    assert "2 new pending sender(s) sent" in digest_send(gw, ALICE, "--now")

    [msg] = digests(dovecot, ALICE)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["To"] == ALICE
    assert msg["Subject"] == "SenderGate: 2 new senders waiting for your decision"
    text, html = parts(msg)
    assert "Fred Friend <friend@sender.test>" in text and "Subject: Lunch on Friday" in text
    assert "attempts: 1; verified domain sender.test" in text
    assert "attempts: 1; domain not verified" in text  # soft@: softfail when the challenge was made
    assert "Invoice &lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html  # escaped in HTML
    assert "<img" not in html.lower() and "src=" not in html.lower()  # no remote content, no tracking pixel
    approve, _ = links_for(text, "friend@sender.test")
    _, deny = links_for(text, "soft@sender.test")
    assert approve.startswith(gw.http_url + "/d/") and approve in html.replace("&amp;", "&")

    # A link scanner fetches every URL: GET shows a page and changes nothing.
    for url in (approve, deny, approve):
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200 and "Nothing changes until you press the button" in r.text
    assert challenge_of(gw, "friend@sender.test")["status"] == "pending"
    assert challenge_of(gw, "soft@sender.test")["status"] == "pending"
    assert allowed(gw, "friend@sender.test") == []

    page = browser.new_page()
    try:
        page.goto(approve)
        assert page.title() == "Approve this sender?"
        assert challenge_of(gw, "friend@sender.test")["status"] == "pending"  # the browser's GET neither
        page.click("#decide")
        page.wait_for_selector("#done")
        assert page.title() == "Approved"
        assert challenge_of(gw, "friend@sender.test")["status"] == "approved"
        assert allowed(gw, "friend@sender.test") == ["approved"]
        # used: the same link again is refused with a clear page
        resp = page.goto(approve)
        assert resp is not None and resp.status == 410
        assert page.title() == "This link was already used"

        page.goto(deny)
        page.click("#decide")
        page.wait_for_selector("#done")
        assert page.title() == "Denied"
        assert challenge_of(gw, "soft@sender.test")["status"] == "denied"
    finally:
        page.close()
    # The digest's approval of an authenticated sender tells them ([notify]); the relay delivered it.
    notice = email.message_from_bytes(relay.wait_for_mail("friend", timeout=15))
    assert notice["Subject"] == f"You can write to {ALICE} now"


def test_a_second_digest_lists_only_new_senders_and_nothing_new_sends_none(gw: GatewayProcess,
                                                                           dovecot: DovecotServer) -> None:
    before = len(digests(dovecot, BOB))
    assert "nothing new" in digest_send(gw, BOB, "--now") or before == 0
    assert send(gw, "pal@sender.test", PASS_IP, rcpt=BOB, subject="First")[0] == 550
    assert "1 new pending sender(s) sent" in digest_send(gw, BOB, "--now")
    assert "nothing new" in digest_send(gw, BOB, "--now")
    mails = digests(dovecot, BOB)
    assert len(mails) == before + 1
    assert "pal@sender.test" in parts(mails[-1])[0]


def test_forged_tampered_expired_replayed_and_foreign_links_change_nothing(gw: GatewayProcess) -> None:
    store = gw.store
    alice, bob = store.user_by_address(ALICE).id, store.user_by_address(BOB).id
    a_cid, _ = store.open_challenge(alice, ALICE, "victim-a@sender.test", ttl=3600, subject="A")
    b_cid, _ = store.open_challenge(bob, BOB, "victim-b@sender.test", ttl=3600, subject="B")
    assert a_cid and b_cid
    secret = link_secret(store)
    exp = int(time.time()) + 3600
    good = make_link_token(secret, alice, a_cid, "a", exp)
    uid, cid, act, e, nonce, mac = good.split(".")

    def refused(token: str, reason: str, status: int) -> None:
        with httpx.Client(base_url=gw.http_url, timeout=10) as c:
            r = c.get(f"/d/{token}")
            assert r.status_code == status and f'data-reason="{reason}"' in r.text, (token, r.status_code, r.text)
            r = c.post(f"/d/{token}", data={"csrf": "1.x"})
            assert r.status_code in (403, status), r.text  # no valid form: refused either way

    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    refused(f"{uid}.{cid}.{act}.{e}.{nonce}.{flipped}", "forged", 404)  # tampered signature
    refused(f"{uid}.{b_cid}.{act}.{e}.{nonce}.{mac}", "forged", 404)  # another user's challenge id
    refused(f"{bob}.{cid}.{act}.{e}.{nonce}.{mac}", "forged", 404)  # another user
    refused(f"{uid}.{cid}.a.{int(e) + 86400}.{nonce}.{mac}", "forged", 404)  # a longer life
    refused(f"{uid}.{cid}.d.{e}.{nonce}.{mac}", "forged", 404)  # the other decision
    refused(make_link_token("guessed-secret", alice, a_cid, "a", exp), "forged", 404)
    refused(make_link_token(secret, alice, b_cid, "a", exp), "gone", 404)  # signed, but not alice's challenge
    refused(make_link_token(secret, alice, a_cid, "a", int(time.time()) - 10), "expired", 410)
    refused("not-a-link", "malformed", 404)
    assert store.get_challenge(None, a_cid)["status"] == "pending"
    assert store.get_challenge(None, b_cid)["status"] == "pending"

    with httpx.Client(base_url=gw.http_url, timeout=10) as c:
        form = c.get(f"/d/{good}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        # a cross-site POST (another site's form, with the cookie) is refused
        r = c.post(f"/d/{good}", data={"csrf": csrf.group(1)}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and store.get_challenge(None, a_cid)["status"] == "pending"
        # the CSRF field without the page's cookie (a scanner, another browser) is refused
        r = httpx.post(f"{gw.http_url}/d/{good}", data={"csrf": csrf.group(1)}, timeout=10)
        assert r.status_code == 403 and store.get_challenge(None, a_cid)["status"] == "pending"
        r = c.post(f"/d/{good}", data={"csrf": csrf.group(1)})
        assert r.status_code == 200 and store.get_challenge(None, a_cid)["status"] == "approved"
        # replay: the same POST again
        r = c.post(f"/d/{good}", data={"csrf": csrf.group(1)})
        assert r.status_code == 410 and 'data-reason="used"' in r.text
    # a used link stays used even after the challenge is pending again (a new one for the sender)
    assert store.digest_link_used(nonce)


def test_a_flood_of_senders_makes_a_capped_digest(gw: GatewayProcess, dovecot: DovecotServer) -> None:
    bob = gw.store.user_by_address(BOB).id
    for i in range(MAX_ENTRIES + 7):
        gw.store.open_challenge(bob, BOB, f"flood{i}@spam.test", ttl=3600, subject=f"Offer {i}")
    assert f"{MAX_ENTRIES} new pending sender(s) sent" in digest_send(gw, BOB, "--now")
    text, html = parts(digests(dovecot, BOB)[-1])
    assert text.count("Approve: ") == MAX_ENTRIES and html.count(">Approve</a>") == MAX_ENTRIES
    total = int(text.split(" new senders", 1)[0])  # the flood, and any pending since bob's last digest
    assert total >= MAX_ENTRIES + 7
    more = f"and {total - MAX_ENTRIES} more in the app"
    assert more in text and more in html


def test_frequency_api(gw: GatewayProcess) -> None:
    with api(gw) as c:
        got = c.get("/api/v1/digest").json()
        assert got["frequency"] == "off" and got["default"] is True  # the configured digest.default
        r = c.put("/api/v1/digest", json={"frequency": "weekly"})
        assert r.status_code == 200 and r.json()["frequency"] == "weekly" and r.json()["default"] is False
        assert c.put("/api/v1/digest", json={"frequency": "hourly"}).status_code == 422
        assert c.put("/api/v1/digest", json={"frequency": "daily", "user_id": 2}).status_code == 422
        assert c.get("/api/v1/digest").json()["frequency"] == "weekly"
    with api(gw, BOB) as c:
        assert c.get("/api/v1/digest").json()["frequency"] == "off"  # alice's choice is hers
    assert httpx.get(f"{gw.http_url}/api/v1/digest", timeout=10).status_code == 401


def test_two_nodes_send_one_digest(dns: None, dovecot: DovecotServer) -> None:
    first = digest_gateway(dovecot, digest={"default": "daily", "hour": 0})
    second = digest_gateway(dovecot, store_url=first.store_url, digest={"default": "daily", "hour": 0})
    try:
        uid = first.store.add_user(CAROL)[0].id
        first.store.open_challenge(uid, CAROL, "someone@sender.test", ttl=3600, subject="Hi Carol")
        before = len(digests(dovecot, CAROL))
        # Both nodes' housekeeping runs at start: each finds carol's daily digest due.
        starting = [threading.Thread(target=g.start) for g in (first, second)]
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        wait_log_any = time.monotonic() + 20
        while "digest sent to" not in first.read_log() + second.read_log():
            assert time.monotonic() < wait_log_any, first.read_log()[-2000:] + second.read_log()[-2000:]
            time.sleep(0.05)
        time.sleep(1.5)  # the other node's housekeeping has run by now (it started before this line)
        assert (first.read_log() + second.read_log()).count("digest sent to") == 1
        assert len(digests(dovecot, CAROL)) == before + 1
    finally:
        second.close()
        first.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_node_that_read_before_another_sent_does_not_send_again(dns: None, dovecot: DovecotServer,
                                                                   backend: str, tmp_path: Path) -> None:
    """Two nodes' housekeeping interleaved on purpose: node A reads the due digests, node B sends
    carol's in between, then A tries to claim it with what it read. The store's compare-and-set
    refuses A (on PostgreSQL as on SQLite), so one digest arrives."""
    import asyncio

    from sendergate import delivery
    from sendergate.config import load
    from sendergate.digest import send_digests
    from sendergate.store import Store
    from tests.support.postgres import PostgresServer

    pg = PostgresServer() if backend == "postgresql" else None
    try:
        url = pg.create_database("digest_race") if pg else f"sqlite:///{tmp_path}/race.db"
        gw = digest_gateway(dovecot, store_url=url, digest={"default": "daily", "hour": 0})
        cfg = load(gw.config_path)
        node_a, node_b = Store(url), Store(url)
        node_a.migrate()
        user = f"race-{backend}@example.org"
        dovecot.add_user(user, "secret")
        uid = node_a.add_user(user)[0].id
        node_a.open_challenge(uid, user, "racer@sender.test", ttl=3600, subject="Race")
        interleaved = []

        async def call_a(fn, *args):  # type: ignore[no-untyped-def]
            if getattr(fn, "__name__", "") == "claim_digest" and not interleaved:
                interleaved.append(await send_digests(cfg, node_b, delivery.Deliverer(cfg.delivery, "b.test")))
            return fn(*args)

        result: list[object] = []
        # in a thread of its own: playwright's sync API (the module's browser) holds this thread's event loop
        runner = threading.Thread(target=lambda: result.append(asyncio.run(
            send_digests(cfg, node_a, delivery.Deliverer(cfg.delivery, "a.test"), call=call_a))))
        runner.start()
        runner.join(60)
        [sent_a] = result
        assert [s.address for s in interleaved[0]] == [user]
        assert sent_a == []  # A read carol's digest as due, B sent it meanwhile: A's claim fails
        assert len(digests(dovecot, user)) == 1
        node_a.close()
        node_b.close()
        gw.close()
    finally:
        if pg is not None:
            pg.stop()


# -- telling an approved sender -----------------------------------------------------------


def test_api_approval_tells_an_authenticated_sender_once(gw: GatewayProcess, relay: PostfixInstance) -> None:
    assert send(gw, "control@sender.test", PASS_IP, subject="Quote")[0] == 550
    cid = challenge_of(gw, "control@sender.test")["id"]
    with api(gw) as c:
        assert c.post(f"/api/v1/challenges/{cid}/approve").status_code == 200
        raw = relay.wait_for_mail("control", timeout=15)
        notice = email.message_from_bytes(raw)
        assert notice["Subject"] == f"You can write to {ALICE} now"
        assert notice["Auto-Submitted"] == "auto-generated" and notice["Return-Path"] == "<>"
        assert "please send it again" in notice.get_payload()
        # removed and challenged again, approved again: not told a second time
        entry = [e for e in c.get("/api/v1/allowlist", params={"q": "control@sender.test"}).json()["items"]]
        assert entry
        assert c.delete(f"/api/v1/allowlist/{entry[0]['id']}").status_code in (200, 204)
        assert send(gw, "control@sender.test", PASS_IP, subject="Quote again")[0] == 550
        cid2 = challenge_of(gw, "control@sender.test")["id"]
        assert cid2 != cid
        assert c.post(f"/api/v1/challenges/{cid2}/approve").status_code == 200
    wait_log(gw, "notify: control@sender.test was told before; not again")
    relay.wait_for_empty_queue(10)
    assert maildir_count(relay, "control") == 1


def test_never_a_notice_for_unauthenticated_forged_role_confirmed_or_imported_senders(
        gw: GatewayProcess, relay: PostfixInstance) -> None:
    alice = gw.store.user_by_address(ALICE).id
    # unauthenticated: softfail when the challenge was made
    assert send(gw, "pal@sender.test", SOFT_IP, subject="Hi")[0] == 550
    # forged: a stranger's server adds an Authentication-Results header claiming a pass (the gateway strips it)
    forged_ar = ("Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=sender.test; "
                 "dkim=pass header.d=sender.test\r\n")
    assert send(gw, "forger@sender.test", SOFT_IP, subject="Trust me", extra_headers=forged_ar)[0] == 550
    # a role address, authenticated (the gateway screens such mail instead, so the store opens it)
    role_cid, _ = gw.store.open_challenge(alice, ALICE, "no-reply@sender.test", ttl=3600,
                                          auth="spf=pass:sender.test dkim=pass:sender.test dmarc=pass")
    # a confirmation: the sender solved the CAPTCHA on the real page, then the user approves too
    code, reply = send(gw, "confirmer@sender.test", PASS_IP, subject="Confirming")
    token = re.search(r"/c/([A-Za-z0-9_-]{22})", reply)
    assert code == 550 and token, reply
    with httpx.Client(base_url=gw.http_url, timeout=10) as c:
        page = c.get(f"/c/{token.group(1)}")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert nonce and csrf
        answer = expected_answer(gw.store, token.group(1), nonce.group(1))
        r = c.post(f"/c/{token.group(1)}", data={"nonce": nonce.group(1), "csrf": csrf.group(1), "answer": answer})
        assert r.status_code == 200
    assert challenge_of(gw, "confirmer@sender.test")["status"] == "confirmed"
    # an import: a pending, authenticated sender imported from the address book
    assert send(gw, "imported@sender.test", PASS_IP, subject="Hello from the book")[0] == 550
    with api(gw) as c:
        assert c.post("/api/v1/allowlist/import", json={"entries": ["imported@sender.test"]}).json()["added"] == 1
        for sender in ("pal@sender.test", "forger@sender.test", "confirmer@sender.test"):
            cid = challenge_of(gw, sender)["id"]
            assert c.post(f"/api/v1/challenges/{cid}/approve").status_code == 200
        assert c.post(f"/api/v1/challenges/{role_cid}/allow-domain").status_code == 200
    for sender, why in (("pal@sender.test", "not authenticated"), ("forger@sender.test", "not authenticated"),
                        ("no-reply@sender.test", "role or automated"), ("confirmer@sender.test", "was confirmed")):
        wait_log(gw, f"notify: not telling {sender}")
        assert why in [ln for ln in gw.read_log().splitlines() if f"not telling {sender}" in ln][-1]
    forged_auth = challenge_of(gw, "forger@sender.test")["auth"]
    assert authenticated_domain("forger@sender.test", str(forged_auth)) is None, forged_auth
    relay.wait_for_empty_queue(10)
    for box in ("pal", "forger", "no-reply", "confirmer", "imported"):
        assert maildir_count(relay, box) == 0, box
    assert not re.search(r"to=<(pal|forger|no-reply|confirmer|imported)@sender\.test>", relay.maillog())


# -- pure parts ---------------------------------------------------------------------------


def test_notice_refusals() -> None:
    ok = {"sender": "a@x.test", "auth": "spf=pass:x.test dkim=none dmarc=none", "user_id": 1}
    assert refusal(ok, "pending") is None
    assert refusal({**ok, "auth": "spf=none dkim=pass:mail.x.test dmarc=pass"}, "pending") is None  # aligned DKIM
    assert refusal({**ok, "auth": "spf=pass:other.test dkim=pass:esp.test dmarc=none"}, "pending")  # not aligned
    assert refusal({**ok, "auth": "spf=softfail:x.test dkim=fail dmarc=none"}, "pending")
    assert refusal({**ok, "auth": None}, "pending")  # the checks did not run
    assert refusal({**ok, "sender": ""}, "pending") == "null sender"
    for role in ("mailer-daemon", "postmaster", "noreply", "bounces+x=y", "notifications"):
        assert refusal({**ok, "sender": f"{role}@x.test"}, "pending"), role
    for prior in ("confirmed", "approved", "denied", "expired"):
        assert refusal(ok, prior), prior


def test_link_tokens_round_trip_and_refuse_changes() -> None:
    t = make_link_token("s", 3, 9, "d", int(time.time()) + 60)
    link = parse_link_token("s", t)
    assert (link.user_id, link.challenge_id, link.action) == (3, 9, "deny")
    assert len(t.split(".")[4]) >= 16  # the nonce: 96 bits
    assert make_link_token("s", 3, 9, "d", 1) != make_link_token("s", 3, 9, "d", 1)

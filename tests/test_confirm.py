"""The confirmation page (SPEC §5) over real HTTP against a real gateway process.

One gateway serves the module; each test uses its own senders (so its own
challenges) and its own client IP (X-Forwarded-For from 127.0.0.1, configured
as a trusted proxy), so the rate limits of one test do not leak into another.
The expected CAPTCHA answer is read from the store, as an admin could.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import ssl
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import select, update

from sendergate.store import schema
from sendergate.web import captcha
from sendergate.web.confirm import (
    ANSWERS_PER_CHALLENGE,
    ANSWERS_PER_IP,
    best_language,
    canonical_token,
    expected_answer,
)
from tests.support.gateway import GatewayProcess

RECIPIENT = "alice@example.org"
_ips = itertools.count(10)
_senders = itertools.count(1)


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(extra={"http": {"trusted_proxies": ["127.0.0.1"]}})
    # The admin's override directory: `web/` next to the config file.
    web = gateway.config_path.parent / "web"
    (web / "messages").mkdir(parents=True)
    (web / "messages" / "fr.json").write_text(json.dumps(
        {"title": "Confirmez que vous êtes une personne", "button": "Confirmer"}), encoding="utf-8")
    (web / "admin-logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    gateway.start()
    gateway.user, _ = gateway.store.add_user(RECIPIENT)  # type: ignore[attr-defined]
    yield gateway
    gateway.close()


@dataclass
class Form:
    csrf: str
    nonce: str
    response: httpx.Response


class Sender:
    """One person at one browser: a cookie jar and a client IP."""

    def __init__(self, gw: GatewayProcess, *, lang: str = "en") -> None:
        self.gw = gw
        self.ip = f"192.0.2.{next(_ips)}"
        self.http = httpx.Client(base_url=gw.http_url, timeout=10,
                                 headers={"X-Forwarded-For": self.ip, "Accept-Language": lang})

    def open(self, token: str) -> Form:
        r = self.http.get(f"/c/{token}")
        assert r.status_code == 200, r.text
        return parse_form(r)

    def post(self, token: str, form: Form, answer: str, **headers: str) -> httpx.Response:
        return self.http.post(f"/c/{token}", data={"csrf": form.csrf, "nonce": form.nonce, "answer": answer},
                              headers=headers)


def parse_form(r: httpx.Response) -> Form:
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
    nonce = re.search(r'name="nonce" value="([^"]+)"', r.text)
    assert csrf and nonce, r.text
    return Form(csrf.group(1), nonce.group(1), r)


def new_link(gw: GatewayProcess, *, ttl: float = 3600, subject: str = "Hello", sender: str | None = None,
             recipient: str = RECIPIENT) -> tuple[int, str, str]:
    sender = sender or f"person{next(_senders)}@sender.test"
    cid, token = gw.store.open_challenge(gw.user.id, recipient, sender, ttl=ttl, subject=subject)  # type: ignore[attr-defined]
    return cid, token, sender


def challenge(gw: GatewayProcess, cid: int) -> object:
    with gw.store.engine.connect() as conn:
        return conn.execute(select(schema.challenges).where(schema.challenges.c.id == cid)).one()


def allow_entries(gw: GatewayProcess, sender: str) -> list[object]:
    with gw.store.engine.connect() as conn:
        return conn.execute(select(schema.list_entries).where(schema.list_entries.c.value == sender)).all()


def right(gw: GatewayProcess, token: str, form: Form) -> str:
    return expected_answer(gw.store, token, form.nonce)


def wrong(gw: GatewayProcess, token: str, form: Form) -> str:
    return other_than(right(gw, token, form))


def other_than(answer: str) -> str:
    return f"{(int(answer) + 1) % 10**6:06d}"


# -- the page ---------------------------------------------------------------------


def test_page_says_whom_the_sender_wrote_to_and_escapes_every_value(gw: GatewayProcess) -> None:
    cid, token, _ = new_link(gw, subject='<script>alert("s")</script> & more',
                             sender="o'hara<img src=x>@sender.test",
                             recipient='"<b>boss</b>"@example.org')
    r = Sender(gw).http.get(f"/c/{token}")
    assert r.status_code == 200
    body = r.text
    assert "<script>" not in body and "<b>" not in body and "<img src=x>" not in body
    assert "&lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt; &amp; more" in body
    assert "&lt;b&gt;boss&lt;/b&gt;" in body
    assert "o&#39;hara&lt;img src=x&gt;@sender.test" in body
    assert "send your message again" in body
    # one field the sender fills in, one button, an image and an audio alternative
    assert len(re.findall(r'<input (?![^>]*type="hidden")', body)) == 1
    assert body.count("<button") == 1
    assert re.search(r'<img class="captcha" src="[^"]+captcha\.png\?n=[^"]+" [^>]*alt="[^"]+"', body)
    assert re.search(r'<audio [^>]*src="[^"]+captcha\.wav\?n=', body)
    assert "<script" not in body.lower()  # readable without JavaScript: there is none


def test_security_headers_on_every_page(gw: GatewayProcess) -> None:
    _, token, _ = new_link(gw)
    s = Sender(gw)
    pages = [s.http.get(f"/c/{token}"), s.http.get("/c/" + "A" * 22), s.http.get("/c/nonsense")]
    form = parse_form(pages[0])
    pages.append(s.http.get(f"/c/{token}/captcha.png", params={"n": form.nonce}))
    for r in pages:
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
    cookie = pages[0].headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/c/" in cookie


def test_wrong_answer_gets_a_new_captcha_then_right_answer_allowlists_the_sender(gw: GatewayProcess) -> None:
    cid, token, sender = new_link(gw, sender="carol@sender.test")
    s = Sender(gw)
    first = s.open(token)
    first_answer = right(gw, token, first)
    r = s.post(token, first, other_than(first_answer))
    assert r.status_code == 400 and "That was not right" in r.text
    second = parse_form(r)
    assert second.nonce != first.nonce
    assert challenge(gw, cid).confirm_failures == 1 and challenge(gw, cid).status == "pending"

    # The first CAPTCHA was used up by the wrong answer: its right answer no longer counts.
    r = s.post(token, first, first_answer)
    assert r.status_code == 400 and "already been used" in r.text
    second = parse_form(r)  # that page is a new CAPTCHA again
    assert challenge(gw, cid).status == "pending"

    second_answer = right(gw, token, second)
    r = s.post(token, second, second_answer)
    assert r.status_code == 200, r.text
    assert "You can now send your message again" in r.text
    row = challenge(gw, cid)
    assert row.status == "confirmed"
    entries = allow_entries(gw, sender)
    assert [(e.action, e.source, e.user_id) for e in entries] == [("allow", "confirmed", gw.user.id)]

    # The link stays friendly afterwards, and a second answer changes nothing.
    again = s.http.get(f"/c/{token}")
    assert again.status_code == 200 and "you are confirmed" in again.text
    assert s.post(token, second, second_answer).status_code == 200
    assert len(allow_entries(gw, sender)) == 1
    assert re.search(rf"confirmed challenge_id={cid} .*sender={re.escape(sender)}", gw.read_log())

    # and the gateway now delivers this sender's mail
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, RECIPIENT, "second try"
    msg.set_content("hello again")
    with gw.smtp() as smtp:
        smtp.send_message(msg)
    assert gw.events()[-1].verdict == "delivered"


def test_answer_is_bound_to_its_token(gw: GatewayProcess) -> None:
    cid_a, token_a, _ = new_link(gw)
    cid_b, token_b, _ = new_link(gw)
    s = Sender(gw)
    form_a, form_b = s.open(token_a), s.open(token_b)
    # token B's form, but the CAPTCHA (nonce and answer) of token A
    r = s.http.post(f"/c/{token_b}", data={"csrf": form_b.csrf, "nonce": form_a.nonce,
                                           "answer": right(gw, token_a, form_a)})
    assert r.status_code == 400
    assert challenge(gw, cid_b).status == "pending"
    form_b = parse_form(r)  # that answer page shows token B a new CAPTCHA
    # token A's CSRF field does not open token B's form either
    r = s.http.post(f"/c/{token_b}", data={"csrf": form_a.csrf, "nonce": form_b.nonce,
                                           "answer": right(gw, token_b, form_b)})
    assert r.status_code == 403
    assert challenge(gw, cid_b).status == "pending" and challenge(gw, cid_a).status == "pending"


def test_csrf_protection(gw: GatewayProcess) -> None:
    cid, token, _ = new_link(gw)
    s = Sender(gw)
    form = s.open(token)
    answer = right(gw, token, form)
    # no cookie (a forged cross-site form cannot send ours under SameSite=Lax)
    bare = httpx.post(f"{gw.http_url}/c/{token}", data={"csrf": form.csrf, "nonce": form.nonce, "answer": answer},
                      headers={"X-Forwarded-For": s.ip})
    assert bare.status_code == 403 and "came from another page" in bare.text
    assert s.post(token, Form("1.deadbeef", form.nonce, form.response), answer).status_code == 403
    assert s.post(token, form, answer, Origin="https://evil.example").status_code == 403
    assert s.post(token, form, answer, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    old = captcha.csrf_value(expected_secret(gw), s.http.cookies["sg_form"], token, int(time.time()) - 13 * 3600)
    assert s.post(token, Form(old, form.nonce, form.response), answer).status_code == 403
    assert challenge(gw, cid).status == "pending" and challenge(gw, cid).confirm_failures == 0
    # each refused post showed a new CAPTCHA; its form, posted as a browser does from a no-referrer page
    # (Origin: null)
    form = s.open(token)
    answer = right(gw, token, form)
    assert s.post(token, form, answer, Origin="null", **{"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert challenge(gw, cid).status == "confirmed"


def expected_secret(gw: GatewayProcess) -> str:
    return gw.store.page_secret()


def test_rate_limit_per_token(gw: GatewayProcess) -> None:
    cid, token, _ = new_link(gw)
    limit = ANSWERS_PER_CHALLENGE[0]
    s = Sender(gw)
    form = s.open(token)
    for _ in range(limit):
        r = s.post(token, form, wrong(gw, token, form))
        assert r.status_code == 400
        form = parse_form(r)
    # the limit is the link's, whichever client asks: a new IP with the right answer is refused too
    other = Sender(gw)
    form = other.open(token)
    r = other.post(token, form, right(gw, token, form))
    assert r.status_code == 429
    assert "Too many attempts" in r.text
    assert int(r.headers["retry-after"]) > 0
    assert challenge(gw, cid).status == "pending" and challenge(gw, cid).confirm_failures == limit


def test_rate_limit_per_client_ip(gw: GatewayProcess) -> None:
    limit = ANSWERS_PER_IP[0]
    per_link = ANSWERS_PER_CHALLENGE[0] - 1  # stay under the per-link limit
    s = Sender(gw)
    sent = 0
    while sent < limit:
        _, token, _ = new_link(gw)
        form = s.open(token)
        for _ in range(min(per_link, limit - sent)):
            r = s.post(token, form, wrong(gw, token, form))
            assert r.status_code == 400
            form = parse_form(r)
            sent += 1
    cid, token, _ = new_link(gw)
    form = s.open(token)
    r = s.post(token, form, right(gw, token, form))
    assert r.status_code == 429 and "Too many attempts" in r.text
    assert challenge(gw, cid).status == "pending"
    # another client is not affected
    other = Sender(gw)
    form = other.open(token)
    assert other.post(token, form, right(gw, token, form)).status_code == 200


def test_expired_link_cannot_be_confirmed(gw: GatewayProcess) -> None:
    cid, token, sender = new_link(gw, ttl=3600)
    s = Sender(gw)
    form = s.open(token)
    with gw.store.engine.begin() as conn:  # time passes: the challenge is past its expiry
        conn.execute(update(schema.challenges).where(schema.challenges.c.id == cid)
                     .values(expires_at=time.time() - 1))
    r = s.post(token, form, right(gw, token, form))
    assert r.status_code == 410 and "This link has expired" in r.text
    assert s.http.get(f"/c/{token}").status_code == 410
    assert s.http.get(f"/c/{token}/captcha.png", params={"n": form.nonce}).status_code == 410
    assert challenge(gw, cid).status == "pending" and allow_entries(gw, sender) == []
    gw.store.expire_challenges()  # housekeeping's view agrees
    assert challenge(gw, cid).status == "expired"
    assert s.http.get(f"/c/{token}").status_code == 410


def test_denied_challenge_cannot_be_confirmed(gw: GatewayProcess) -> None:
    cid, token, sender = new_link(gw)
    s = Sender(gw)
    form = s.open(token)
    with gw.store.engine.begin() as conn:  # the recipient denied it in the app
        conn.execute(update(schema.challenges).where(schema.challenges.c.id == cid).values(status="denied"))
    r = s.post(token, form, right(gw, token, form))
    assert r.status_code == 410 and "can no longer be used" in r.text
    assert s.http.get(f"/c/{token}").status_code == 410
    assert challenge(gw, cid).status == "denied" and allow_entries(gw, sender) == []


def test_unknown_malformed_and_decorated_tokens(gw: GatewayProcess) -> None:
    _, token, _ = new_link(gw)
    s = Sender(gw)
    r = s.http.get("/c/" + "B" * 22)
    assert r.status_code == 404 and "This link is not valid" in r.text
    assert s.http.get("/c/short").status_code == 404
    assert s.http.post("/c/" + "B" * 22, data={"answer": "1"}).status_code == 404
    # mail clients glue trailing punctuation onto links
    r = s.http.get(f"/c/{token}.", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == token
    assert s.http.get(f"/c/{token}).", follow_redirects=True).status_code == 200


def test_captcha_image_and_audio(gw: GatewayProcess) -> None:
    _, token, _ = new_link(gw)
    s = Sender(gw)
    form = s.open(token)
    png = s.http.get(f"/c/{token}/captcha.png", params={"n": form.nonce})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    for lang in ("en", "de"):
        wav = s.http.get(f"/c/{token}/captcha.wav", params={"n": form.nonce}, headers={"Accept-Language": lang})
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        assert wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"
        with wave.open(io.BytesIO(wav.content)) as w:
            seconds = w.getnframes() / w.getframerate()
        assert 4 < seconds < 40, seconds  # six spoken digits with pauses
    assert s.http.get(f"/c/{token}/captcha.png", params={"n": "garbage"}).status_code == 404
    assert s.http.get(f"/c/{token}/captcha.png", params={"n": "A" * 22}).status_code == 410
    css = s.http.get("/c/assets/confirm.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert s.http.get("/c/assets/..%2Fmessages%2Fen.json").status_code == 404


def test_language_from_accept_language_and_admin_overrides(gw: GatewayProcess) -> None:
    _, token, _ = new_link(gw)
    de = Sender(gw, lang="de-CH, de;q=0.9, en;q=0.5").http.get(f"/c/{token}")
    assert '<html lang="de">' in de.text and "Bestätigen Sie, dass Sie ein Mensch sind" in de.text
    assert "Die sechs Ziffern" in de.text
    en = Sender(gw, lang="ja, en-GB;q=0.8").http.get(f"/c/{token}")
    assert '<html lang="en">' in en.text and "Confirm that you are a person" in en.text
    # the admin added French in <config dir>/web/messages/fr.json: missing keys fall back to English
    fr = Sender(gw, lang="fr-FR").http.get(f"/c/{token}")
    assert '<html lang="fr">' in fr.text and "Confirmez que vous êtes une personne" in fr.text
    assert ">Confirmer</button>" in fr.text and "The six digits" in fr.text
    logo = Sender(gw).http.get("/c/assets/admin-logo.svg")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/svg+xml"


# -- pure helpers -------------------------------------------------------------------


@pytest.mark.parametrize("header,expected", [
    ("de-DE,de;q=0.9,en;q=0.8", "de"),
    ("en-US,en;q=0.9,de;q=0.8", "en"),
    ("fr;q=1, de;q=0.5", "de"),
    ("de;q=0, en;q=0.1", "en"),
    ("", "en"),
    ("*", "en"),
    ("x-klingon, DE", "de"),
])
def test_best_language(header: str, expected: str) -> None:
    assert best_language(header, {"en", "de"}) == expected


def test_canonical_token() -> None:
    t = "AbCdEfGhIjKlMnOpQrStU_"
    assert canonical_token(t) == t
    assert canonical_token(t + ".") == t and canonical_token(t + ">") == t
    assert canonical_token(t + "x") is None and canonical_token("short") is None


def test_answer_matching_tolerates_spaces_and_lookalikes() -> None:
    assert captcha.answer_matches("012345", " 01 23-45 ")
    assert captcha.answer_matches("010101", "o1O1ol")
    assert not captcha.answer_matches("012345", "012346")
    assert not captcha.answer_matches("012345", "0123456")
    assert not captcha.answer_matches("012345", "")


def test_answers_and_nonces_are_random() -> None:
    answers = {captcha.new_answer() for _ in range(50)}
    assert len(answers) > 45 and all(re.fullmatch(r"\d{6}", a) for a in answers)
    nonce = captcha.new_nonce()
    assert captcha.nonce_ok(nonce) and not captcha.nonce_ok("7-AAAAAAAAAAAAAAAA") and nonce != captcha.new_nonce()


def test_german_audio_uses_the_shipped_german_digits() -> None:
    voices = captcha.voice_dir("de")
    assert voices is not None, "resources/sounds/de missing: run installer/dev/captcha-voices.py de"
    for digit in "0123456789":
        files = sorted((voices / digit).glob("*.wav"))
        assert files, digit
        for f in files:
            with wave.open(str(f)) as w:  # the captcha package mixes 8 kHz, 8-bit mono only
                assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 1, 1)
                assert w.getnframes() > 1000
    assert captcha.voice_dir("en") is None  # English comes with the captcha package
    assert captcha.wav_seconds(captcha.render_wav("123456", "de")) > 4


def test_https_when_a_certificate_is_configured() -> None:
    from tests.support.common import make_service_dir, remove_service_dir, run_checked

    certs = make_service_dir("sendergate-tls-")
    try:
        run_checked(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                     "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")], "openssl")
        gateway = GatewayProcess(extra={"http": {"tls_cert": str(certs / "cert.pem"),
                                                 "tls_key": str(certs / "key.pem")}})
        with gateway:
            user, _ = gateway.store.add_user(RECIPIENT)
            _, token = gateway.store.open_challenge(user.id, RECIPIENT, "tls@sender.test", ttl=60)
            base = f"https://127.0.0.1:{gateway.http_port}"
            with httpx.Client(base_url=base, verify=ssl.create_default_context(cafile=certs / "cert.pem")) as client:
                r = client.get(f"/c/{token}")
                assert r.status_code == 200 and "Confirm that you are a person" in r.text
                assert "Secure" in r.headers["set-cookie"]  # the form cookie never travels in clear
                form = parse_form(r)
                r = client.post(f"/c/{token}", data={"csrf": form.csrf, "nonce": form.nonce,
                                                     "answer": expected_answer(gateway.store, token, form.nonce)},
                                headers={"Origin": base})
                assert r.status_code == 200 and "You can now send your message again" in r.text
            with pytest.raises(httpx.HTTPError):  # and it is TLS only
                httpx.get(f"http://127.0.0.1:{gateway.http_port}/c/{token}", timeout=5)
    finally:
        remove_service_dir(certs)


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("192.0.2.9", ["198.51.100.1"], "192.0.2.9"),                          # not a proxy: its header is ignored
    ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),                       # the trusted proxy names the client
    ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),              # the client's own additions: ignored
    ("127.0.0.1", ["6.6.6.6", "198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # a chain of trusted proxies
    ("127.0.0.1", ["10.1.2.3"], "10.1.2.3"),                               # every hop trusted: the leftmost
    ("127.0.0.1", ["garbage, 198.51.100.1"], "198.51.100.1"),
    ("127.0.0.1", ["198.51.100.1, garbage"], "127.0.0.1"),                 # a broken proxy: stop at the last good one
    ("127.0.0.1", [], "127.0.0.1"),
    ("::ffff:127.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
])
def test_client_address_behind_trusted_proxies(peer: str, forwarded: list[str], expected: str) -> None:
    from sendergate.web.clientip import client_address, parse_networks
    assert client_address(peer, forwarded, parse_networks(["127.0.0.1", "10.0.0.0/8"])) == expected


def test_rate_keys_count_ipv6_per_64() -> None:
    from sendergate.web.clientip import rate_key
    assert rate_key("2001:db8:1:2:aaaa::1") == rate_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    assert rate_key("192.0.2.1") == "192.0.2.1" != rate_key("192.0.2.2")
    assert rate_key("::ffff:192.0.2.1") == "192.0.2.1"

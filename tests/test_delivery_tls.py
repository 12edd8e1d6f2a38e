"""Delivery over TLS ([delivery] tls, issue 15 item 1): a real gateway delivering a known sender's
message to a real Postfix that requires STARTTLS (smtpd_tls_security_level = encrypt), with
certificates from a CA made here (tests/support/tls_certs.py).

What must hold:
- tls = "required": the message arrives over TLS (Postfix's Received says so) only when the
  certificate chains to tls_ca_file, is in date and names the target's host name (sent as SNI);
  otherwise the client gets 451 4.7.x and Postfix sees no MAIL command: nothing in plaintext.
- tls = "opportunistic" (Postfix's `may`): no STARTTLS offered -> plaintext; a failed handshake ->
  the transaction again in plaintext on a new connection; a certificate is not checked.
- tls_cert/tls_key: the gateway presents its certificate; Postfix admits only that fingerprint.
- LMTP over TCP to Dovecot uses the same STARTTLS.
- check-config reports reachable / STARTTLS offered / verified or why not, without sending mail.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sendergate.config import ConfigError, DeliveryConfig, from_dict
from sendergate.delivery import Deliverer, DeliveryError, Outbound
from tests.support.gateway import GatewayProcess
from tests.support.postfix import PostfixInstance, ServerTLS
from tests.support.tls_certs import CertFiles, TestCA

MESSAGE = (b"From: Bob <bob@friend.example>\r\nTo: Alice <alice@example.org>\r\nSubject: Over TLS\r\n"
           b"Message-ID: <tls-1@friend.example>\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n"
           b"Only for Alice's eyes.\r\n")


class PKI:
    def __init__(self, directory: Path) -> None:
        self.ca = TestCA(directory)
        self.other_ca = TestCA(directory, name="Someone Else's CA")
        self.server = self.ca.issue("server", dns=("localhost",), ips=("127.0.0.1",))
        self.expired = self.ca.issue("expired", dns=("localhost",), expired=True)
        self.wrong_name = self.ca.issue("wrong-name", dns=("mail.other.test",))
        self.untrusted = self.other_ca.issue("untrusted", dns=("localhost",))
        self.client = self.ca.issue("gateway-client", client=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def mailserver(cert: CertFiles, **tls: Any) -> PostfixInstance:
    """Alice's mail server: Postfix storing example.org mail in Maildirs, STARTTLS as given."""
    return PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), hostname="store.example.org",
                           tls=ServerTLS(cert.cert_file, cert.key_file, **tls))


def plain_mailserver() -> PostfixInstance:
    return PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), hostname="store.example.org")


def send_known(target: str, delivery: dict[str, Any]) -> tuple[tuple[int, bytes], list[Any]]:
    """Bob (known to Alice) sends MESSAGE through a gateway delivering to target: (reply, events)."""
    gw = GatewayProcess(delivery=("smtp", target), extra={"delivery": delivery})
    try:
        alice, _ = gw.store.add_user("alice@example.org")
        gw.store.add_entry(alice.id, "allow", "bob@friend.example")
        gw.start()
        with gw.smtp() as client:
            client.mail("bob@friend.example")
            client.rcpt("alice@example.org")
            reply = client.data(MESSAGE)
        return reply, gw.events()
    finally:
        gw.close()


def details(event: Any) -> dict[str, Any]:
    raw = event.details
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})


def mailbox(server: PostfixInstance) -> list[Path]:
    new = server.mail_dir / "alice" / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def smtpd_sessions(server: PostfixInstance) -> list[str]:
    """smtpd's per-session summaries: "disconnect from … ehlo=2 starttls=1 mail=1 … commands=7"
    (not the start-up probe's, which said nothing)."""
    return [s for s in re.findall(r"disconnect from \S+ (.*)", server.maillog()) if s != "commands=0/0"]


def assert_nothing_sent(server: PostfixInstance) -> None:
    """No MAIL command reached Postfix, so not a byte of the message (or its envelope) went in clear."""
    sessions = smtpd_sessions(server)
    assert sessions, server.maillog_tail()
    assert not any("mail=" in s for s in sessions), sessions
    assert mailbox(server) == [] and server.queue() == []


def refused_for_tls(reply: tuple[int, bytes], status: str) -> None:
    code, text = reply
    assert code == 451 and text.startswith(status.encode()), reply
    assert b"TLS" in text and b"try again later" in text, reply


# -- tls = "required" ------------------------------------------------------------------------------

def test_required_delivers_over_verified_tls(pki: PKI) -> None:
    with mailserver(pki.server, level="encrypt") as server:
        reply, events = send_known(f"localhost:{server.port}",
                                   {"tls": "required", "tls_ca_file": str(pki.ca.cert_file)})
        delivered = server.wait_for_mail("alice")
        sessions = server.tls_sessions()
    assert reply[0] == 250, reply
    assert b"Only for Alice's eyes." in delivered
    # Postfix's own Received line: received with ESMTPS over TLS, from our EHLO after STARTTLS.
    received = delivered.split(b"\nReceived: ", 2)[1]
    assert b"(using TLSv1." in received and b"with ESMTPS" in received, received
    assert len(sessions) == 1 and "Anonymous TLS connection established" in sessions[0], sessions
    assert [e.verdict for e in events] == ["delivered"]
    assert details(events[0])["downstream_tls"].endswith(" verified"), details(events[0])


@pytest.mark.parametrize("case, why", [
    ("untrusted", "unable to get local issuer certificate"),  # signed by a CA we were not told to trust
    ("expired", "certificate has expired"),
    ("wrong_name", "Hostname mismatch"),  # a valid certificate, for another host
])
def test_required_refuses_a_certificate_it_cannot_verify(pki: PKI, case: str, why: str) -> None:
    with mailserver(getattr(pki, case), level="encrypt") as server:
        reply, events = send_known(f"localhost:{server.port}",
                                   {"tls": "required", "tls_ca_file": str(pki.ca.cert_file)})
        assert_nothing_sent(server)
    refused_for_tls(reply, "4.7.5")
    assert [e.verdict for e in events] == ["tempfail"]
    assert why in events[0].reason and "certificate not verified" in events[0].reason, events[0].reason


def test_required_without_starttls_offered_sends_nothing(pki: PKI) -> None:
    with plain_mailserver() as server:
        reply, events = send_known(f"localhost:{server.port}",
                                   {"tls": "required", "tls_ca_file": str(pki.ca.cert_file)})
        assert_nothing_sent(server)
    refused_for_tls(reply, "4.7.4")
    assert "does not offer STARTTLS" in events[0].reason


def test_required_uses_the_system_store_by_default(pki: PKI) -> None:
    """No tls_ca_file: the system's CAs, which never signed our test CA's certificate."""
    with mailserver(pki.server, level="encrypt") as server:
        reply, _ = send_known(f"localhost:{server.port}", {"tls": "required"})
        assert_nothing_sent(server)
    refused_for_tls(reply, "4.7.5")


def test_required_without_verification_is_postfix_encrypt(pki: PKI) -> None:
    """tls_verify = false (Postfix's `encrypt`): encrypted, any certificate."""
    with mailserver(pki.untrusted, level="encrypt") as server:
        reply, events = send_known(f"localhost:{server.port}", {"tls": "required", "tls_verify": False})
        delivered = server.wait_for_mail("alice")
    assert reply[0] == 250 and b"with ESMTPS" in delivered
    assert details(events[0])["downstream_tls"].endswith(" unverified")


def test_sni_names_the_target_host(pki: PKI) -> None:
    """Postfix shows the certificate for localhost only to a client that asks for it by name (SNI);
    without SNI it shows one for mail.other.test, which would fail the host name check."""
    with mailserver(pki.wrong_name, level="encrypt", sni={"localhost": pki.server.chain_file}) as server:
        reply, _ = send_known(f"localhost:{server.port}",
                              {"tls": "required", "tls_ca_file": str(pki.ca.cert_file)})
        delivered = server.wait_for_mail("alice")
        # The control: a client that sends no SNI (Python sends none to an IP address) gets the other one.
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.starttls(context=unverified)
            shown = hashlib.sha256(client.sock.getpeercert(binary_form=True)).hexdigest()
    assert reply[0] == 250 and b"with ESMTPS" in delivered
    assert shown.upper() == pki.wrong_name.sha256.replace(":", "")


def test_client_certificate_is_presented_and_seen(pki: PKI) -> None:
    """A connector that admits the gateway by its certificate (Postfix: check_ccert_access on the
    SHA-256 fingerprint; anyone else gets 450). Without tls_cert the same gateway is kept out."""
    admitted = {"ask_ccert": True, "ca_file": pki.ca.cert_file, "ccert_fingerprints": (pki.client.sha256,)}
    common = {"tls": "required", "tls_ca_file": str(pki.ca.cert_file)}
    with mailserver(pki.server, level="encrypt", **admitted) as server:
        reply, _ = send_known(f"localhost:{server.port}",
                              {**common, "tls_cert": str(pki.client.cert_file), "tls_key": str(pki.client.key_file)})
        delivered = server.wait_for_mail("alice")
        without, _ = send_known(f"localhost:{server.port}", common)
        log = server.maillog()
    assert reply[0] == 250, reply
    assert b'(Client CN "gateway-client", Issuer "SenderGate Test CA" (verified OK))' in delivered
    assert "Trusted TLS connection established" in log
    assert without[0] == 451 and without[1].startswith(b"4.3.0"), without  # Postfix's 450, passed on as 451
    assert "Recipient address rejected" in log


def test_a_downstream_that_demands_a_client_certificate_we_lack_is_a_tls_failure(pki: PKI) -> None:
    """smtpd_tls_req_ccert: with TLS 1.3 our handshake completes and Postfix refuses only after it
    (an alert on the next read): still a TLS failure, 451 4.7.5, not "unreachable"."""
    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), main_cf={"smtpd_tls_req_ccert": "yes"},
                         tls=ServerTLS(pki.server.cert_file, pki.server.key_file, level="encrypt",
                                       ask_ccert=True, ca_file=pki.ca.cert_file)) as server:
        reply, events = send_known(f"localhost:{server.port}",
                                   {"tls": "required", "tls_ca_file": str(pki.ca.cert_file)})
        assert_nothing_sent(server)
    refused_for_tls(reply, "4.7.5")
    assert "TLS" in events[0].reason, events[0].reason


# -- tls = "opportunistic" (the default) ---------------------------------------------------------------

def test_opportunistic_is_the_default_and_uses_tls_when_offered(pki: PKI) -> None:
    """The certificate is not checked (Postfix's `may`): an untrusted one still gets encryption."""
    assert DeliveryConfig().tls == "opportunistic"
    with mailserver(pki.untrusted, level="may") as server:
        reply, events = send_known(f"localhost:{server.port}", {})
        delivered = server.wait_for_mail("alice")
    assert reply[0] == 250 and b"with ESMTPS" in delivered
    assert details(events[0])["downstream_tls"].endswith(" unverified")


def test_opportunistic_sends_in_plaintext_when_starttls_is_not_offered() -> None:
    with plain_mailserver() as server:
        reply, events = send_known(f"127.0.0.1:{server.port}", {"tls": "opportunistic"})
        delivered = server.wait_for_mail("alice")
    assert reply[0] == 250 and b"with ESMTP id" in delivered and b"ESMTPS" not in delivered
    assert details(events[0])["downstream_tls"] == "plaintext"


# A Postfix whose TLS no client of ours can agree to: its handshake fails after STARTTLS was offered.
NO_COMMON_PROTOCOL = {"smtpd_tls_protocols": "<=TLSv1.1", "smtpd_tls_mandatory_protocols": "<=TLSv1.1"}


def test_opportunistic_retries_in_plaintext_after_a_failed_handshake(pki: PKI) -> None:
    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), main_cf=NO_COMMON_PROTOCOL,
                         tls=ServerTLS(pki.server.cert_file, pki.server.key_file, level="may")) as server:
        reply, events = send_known(f"localhost:{server.port}", {"tls": "opportunistic"})
        delivered = server.wait_for_mail("alice")
        sessions = smtpd_sessions(server)
    assert reply[0] == 250, reply
    assert b"with ESMTP id" in delivered
    # Two connections: the handshake that failed (nothing of the message in it), then plaintext.
    assert len(sessions) == 2 and "mail=" not in sessions[0] and "starttls=" in sessions[0], sessions
    assert "mail=1" in sessions[1] and "starttls" not in sessions[1], sessions
    assert details(events[0])["downstream_tls"] == "plaintext"


def test_opportunistic_fallback_to_a_server_that_requires_tls_is_temporary(pki: PKI) -> None:
    """Handshake failed, and in plaintext Postfix says 530 "Must issue a STARTTLS command first": the
    client gets 451 4.7.5 and sends again later, not a bounce."""
    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), main_cf=NO_COMMON_PROTOCOL,
                         tls=ServerTLS(pki.server.cert_file, pki.server.key_file, level="encrypt")) as server:
        reply, events = send_known(f"localhost:{server.port}", {"tls": "opportunistic"})
        assert mailbox(server) == [] and server.queue() == []
    refused_for_tls(reply, "4.7.5")
    assert "530" in events[0].reason


def test_off_never_starts_tls(pki: PKI) -> None:
    with mailserver(pki.server, level="may") as server:
        reply, events = send_known(f"localhost:{server.port}", {"tls": "off"})
        delivered = server.wait_for_mail("alice")
        assert server.tls_sessions() == []
    assert reply[0] == 250 and b"ESMTPS" not in delivered


# -- LMTP over TCP ------------------------------------------------------------------------------------

def test_lmtp_over_tcp_uses_starttls_to_dovecot() -> None:
    from tests.support.dovecot import DovecotServer

    message = Outbound("bob@friend.example", ["alice@example.org"], MESSAGE)
    with DovecotServer(tls=True) as dovecot:
        dovecot.add_user("alice@example.org", "secret")
        target = f"localhost:{dovecot.lmtp_port}"
        trusted = Deliverer(DeliveryConfig(mode="lmtp", target=target, tls="required",
                                           tls_ca_file=str(dovecot.cert_path)), "mx.example.org")
        done = asyncio.run(trusted.deliver(message))
        untrusted = Deliverer(DeliveryConfig(mode="lmtp", target=target, tls="required"), "mx.example.org")
        with pytest.raises(DeliveryError) as refused:
            asyncio.run(untrusted.deliver(message))
        stored = list((dovecot.maildir("alice@example.org") / "new").iterdir())
    assert done.tls.startswith("TLSv1.") and done.tls.endswith(" verified"), done
    assert refused.value.tls and refused.value.code == 451 and refused.value.status == "4.7.5"
    assert len(stored) == 1


# -- a downstream that lies (a fake: no real server injects replies) --------------------------------

def test_reply_injected_before_the_handshake_is_refused() -> None:
    """A man in the middle appends a reply to "220 ready" (CVE-2011-0411's class): read after the
    handshake, it would pass as said over TLS. The gateway refuses to start TLS on such a stream.
    A fake downstream (asyncio), since no real MTA misbehaves like this."""
    seen: list[bytes] = []

    async def downstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        while line := await reader.readline():
            seen.append(line)
            if line.startswith(b"EHLO"):
                writer.write(b"250-fake\r\n250 STARTTLS\r\n")
            elif line.startswith(b"STARTTLS"):
                writer.write(b"220 2.0.0 Ready to start TLS\r\n250 2.1.0 Ok\r\n")
            else:
                writer.write(b"250 2.0.0 Ok\r\n")
            await writer.drain()
        writer.close()

    async def run() -> DeliveryError:
        server = await asyncio.start_server(downstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            cfg = DeliveryConfig(mode="smtp", target=f"127.0.0.1:{port}", tls="required", tls_verify=False)
            try:
                await Deliverer(cfg, "mx.example.org").deliver(Outbound("b@f.example", ["a@example.org"], MESSAGE))
            except DeliveryError as exc:
                return exc
        raise AssertionError("delivered")

    exc = asyncio.run(run())
    assert exc.tls and exc.status == "4.7.5" and "injection" in exc.text, exc
    assert not any(line.startswith(b"MAIL") for line in seen), seen


def test_the_stream_reader_buffer_the_injection_check_reads_exists() -> None:
    """delivery._Conn.buffered() reads StreamReader._buffer (no public peek): a Python that renamed
    it must fail here, not let the check pass silently."""
    async def make() -> asyncio.StreamReader:
        reader = asyncio.StreamReader()
        reader.feed_data(b"250 x\r\n")
        return reader

    reader = asyncio.run(make())
    assert len(reader._buffer) == 7


# -- configuration and check-config ------------------------------------------------------------------

def test_tls_keys_are_checked(pki: PKI, tmp_path: Path) -> None:
    base = {"domains": {"local": ["example.org"]}}

    def problems(delivery: dict[str, Any]) -> dict[str, str]:
        with pytest.raises(ConfigError) as err:
            from_dict({**base, "delivery": delivery})
        return dict(err.value.problems)

    assert "delivery.tls" in problems({"tls": "always"})
    unix = {"mode": "lmtp", "target": "/run/dovecot/lmtp"}
    assert "unix socket" in problems({**unix, "tls": "required"})["delivery.tls"]
    assert "delivery.tls" in problems({"mode": "maildir", "target": "/srv/mail", "tls": "required"})
    assert "delivery.tls_cert" in problems({"tls_cert": str(pki.client.cert_file)})
    assert "file not found" in problems({"tls_ca_file": str(tmp_path / "nope.pem")})["delivery.tls_ca_file"]
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    assert "delivery.tls_ca_file" in problems({"tls_ca_file": str(not_pem)})
    mismatched = {"tls_cert": str(pki.client.cert_file), "tls_key": str(pki.server.key_file)}
    assert "cannot load" in problems(mismatched)["delivery.tls_cert"]
    # A unix socket and a Maildir go without TLS, as the default says.
    assert from_dict({**base, "delivery": unix}).delivery.tls == "opportunistic"
    assert Deliverer(DeliveryConfig(**unix), "mx").tls_context is None


def check_config(tmp_path: Path, delivery: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    lines = ['[domains]', 'local = ["example.org"]', '[store]', f'url = "sqlite:///{tmp_path}/s.db"', '[delivery]']
    lines += [f"{k} = {json.dumps(v)}" for k, v in delivery.items()]
    path = tmp_path / "sendergate.toml"
    path.write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, "-m", "sendergate", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_check_config_reports_the_downstreams_tls(pki: PKI, tmp_path: Path) -> None:
    ca = str(pki.ca.cert_file)
    with mailserver(pki.server, level="encrypt") as good:
        verified = check_config(tmp_path, {"target": f"localhost:{good.port}", "tls": "required", "tls_ca_file": ca})
        assert_nothing_sent(good)
    with mailserver(pki.expired, level="encrypt") as expired:
        required = check_config(tmp_path, {"target": f"localhost:{expired.port}", "tls": "required", "tls_ca_file": ca})
        opportunistic = check_config(tmp_path, {"target": f"localhost:{expired.port}", "tls_ca_file": ca})
    with plain_mailserver() as plain:
        not_offered = check_config(tmp_path, {"target": f"localhost:{plain.port}", "tls": "required"})
    unreachable = check_config(tmp_path, {"target": "127.0.0.1:1"})

    assert verified.returncode == 0, verified.stderr
    assert "STARTTLS offered" in verified.stdout and "certificate verified for localhost" in verified.stdout
    assert "issuer commonName=SenderGate Test CA" in verified.stdout
    assert required.returncode != 0 and "delivery.tls" in required.stderr
    assert "certificate has expired" in required.stderr and "Traceback" not in required.stderr
    assert opportunistic.returncode == 0 and "certificate not verified: certificate has expired" in opportunistic.stdout
    assert "TLSv1." in opportunistic.stdout  # encrypted all the same
    assert not_offered.returncode != 0 and "does not offer STARTTLS" in not_offered.stderr
    assert unreachable.returncode == 0 and "not reachable" in unreachable.stdout
    assert "warning: delivery.target" in unreachable.stderr


def test_start_tls_without_a_server_name_would_skip_the_host_name_check(pki: PKI) -> None:
    """Why Deliverer always passes the target's host name: asyncio's start_tls (SSLObject, unlike
    SSLSocket) accepts server_hostname=None under check_hostname and then checks no name at all.
    If this ever raises instead, Python closed the trap; the guard in Deliverer stays harmless."""
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(pki.wrong_name.cert_file, pki.wrong_name.key_file)

    async def handshake() -> bool:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=served)
        async with server:
            _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            await writer.start_tls(ssl.create_default_context(cafile=str(pki.ca.cert_file)), server_hostname=None)
            writer.close()
            return True

    assert asyncio.run(handshake())  # mail.other.test's certificate passed for no name at all
    with pytest.raises(ssl.SSLCertVerificationError):
        async def named() -> None:
            server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=served)
            async with server:
                _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
                await writer.start_tls(ssl.create_default_context(cafile=str(pki.ca.cert_file)),
                                       server_hostname="localhost")
        asyncio.run(named())
    assert Deliverer(DeliveryConfig(target="localhost:25", tls="required"), "mx").server_name == "localhost"

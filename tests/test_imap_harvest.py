"""IMAP harvest against a real Dovecot 2.3 on loopback.

Two servers per module: one with SPECIAL-USE, TLS/STARTTLS and XOAUTH2 (its
token introspection endpoint is a small local HTTP server standing in for
Google's/Microsoft's OAuth server, which cannot run here), and one without
SPECIAL-USE, where the Sent folder must be found by name.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from imapclient import IMAPClient

from sendergate.contacts import MACHINE_ROLE, OWN_ADDRESS, ContactsError, HarvestResult, ImapHarvester
from sendergate.store import hash_message_id
from tests.support.cutting_proxy import CuttingProxy
from tests.support.dovecot import DovecotServer
from tests.support.mailgen import (
    OWNER,
    Generated,
    append,
    expected_contacts,
    inbox_messages,
    sent_messages,
)

PASSWORD = "correct horse"
GOOD_TOKEN = "ya29.test-token-for-alice"
N_SENT = 3000
N_INBOX = 1000
_users = itertools.count()


class _Introspection(BaseHTTPRequestHandler):
    """RFC 7662 token introspection: the one token we issued is active, for OWNER's test users."""

    tokens: dict[str, str] = {}

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        token = (form.get("token") or [""])[0]
        user = self.tokens.get(token)
        body = json.dumps({"active": True, "username": user} if user else {"active": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output readable; Dovecot's log records the outcome


@pytest.fixture(scope="module")
def oauth_server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Introspection)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def dovecot(oauth_server: ThreadingHTTPServer) -> Iterator[DovecotServer]:
    url = f"http://127.0.0.1:{oauth_server.server_address[1]}/introspect"
    with DovecotServer(tls=True, oauth2_introspection_url=url) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot_plain() -> Iterator[DovecotServer]:
    with DovecotServer(special_use=False) as server:
        yield server


class Account:
    """A user on a Dovecot with generated Sent and INBOX; knows what a harvest must find."""

    def __init__(self, server: DovecotServer, n_sent: int = N_SENT, n_inbox: int = N_INBOX,
                 sent_folder: str = "Sent") -> None:
        self.server = server
        self.user = f"alice{next(_users)}@example.test"
        server.add_user(self.user, PASSWORD)
        self.sent: list[Generated] = list(sent_messages(n_sent))
        self.inbox: list[Generated] = list(inbox_messages(n_inbox))
        self.sent_folder = sent_folder
        with self.client() as c:
            if not c.folder_exists(sent_folder):
                c.create_folder(sent_folder)
            append(c, sent_folder, self.sent)
            append(c, "INBOX", self.inbox)

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", self.server.imap_port, ssl=False, timeout=30)
        c.login(self.user, PASSWORD)
        return c

    def harvester(self, **kw: object) -> ImapHarvester:
        args: dict[str, object] = dict(host="127.0.0.1", port=self.server.imap_port, security="none",
                                       username=self.user, password=PASSWORD, own_addresses=[OWNER],
                                       batch_size=500, timeout=20)
        args.update(kw)
        return ImapHarvester(**args)  # type: ignore[arg-type]

    def expected(self) -> set[str]:
        return expected_contacts(self.sent) | expected_contacts(self.inbox)

    def sent_hashes(self) -> set[str]:
        return {hash_message_id(m.message_id) for m in self.sent}

    def answered(self) -> int:
        return sum(1 for m in self.inbox if b"\\Answered" in m.flags)


@pytest.fixture(scope="module")
def account(dovecot: DovecotServer) -> Account:
    return Account(dovecot)


def test_first_harvest_finds_exactly_the_correspondents(account: Account) -> None:
    progress: list[tuple[int, int]] = []
    result = account.harvester().harvest(progress=lambda done, total: progress.append((done, total)))
    assert result.addresses == account.expected()
    assert set(result.sent_message_id_hashes) == account.sent_hashes()
    assert len(result.sent_message_id_hashes) == N_SENT
    assert result.messages_read == N_SENT + account.answered()
    assert not result.cancelled
    # Progress: starts at 0, grows monotonically, ends at the total.
    total = N_SENT + account.answered()
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    skipped = {s.raw.lower(): s.reason for s in result.skipped}
    assert skipped["no-reply@shop.example"] == MACHINE_ROLE
    assert skipped["notifications@service.example"] == MACHINE_ROLE
    assert skipped[OWNER] == OWN_ADDRESS
    assert skipped["alice.alias@example.test"] == OWN_ADDRESS  # learned from the From of sent mail
    assert "alice.alias@example.test" in result.state["own"]
    by_address = {c.address: c for c in result.contacts}
    friend0 = by_address["friend0@example.net"]
    assert friend0.count == N_SENT // 300 and friend0.name == "Friend 0"
    assert friend0.last_seen is not None and friend0.last_seen.year == 2025
    assert by_address["juergen@xn--mller-kva.example"].name == "Jürgen Müller"  # RFC 2047 decoded
    assert by_address["colleague7@corp.example"].name == "Colleague, No. 7"
    # Nothing was marked read or changed by the harvest.
    with account.client() as c:
        c.select_folder("Sent", readonly=True)
        assert c.search(["UNSEEN"]) == list(c.search(["ALL"]))


def test_second_run_reads_only_new_mail(dovecot: DovecotServer) -> None:
    acct = Account(dovecot, n_sent=1200, n_inbox=300)
    first = acct.harvester().harvest()
    state = json.loads(json.dumps(first.state))  # what the desktop app stores between runs
    again = acct.harvester().harvest(state)
    assert again.messages_read == 0 and again.contacts == [] and again.sent_message_id_hashes == []
    new_sent = list(sent_messages(100, start=5000, pool="newfriend"))
    new_inbox = list(inbox_messages(10, start=5000, pool="newfan"))
    with acct.client() as c:
        append(c, "Sent", new_sent)
        append(c, "INBOX", new_inbox)
    third = acct.harvester().harvest(again.state)
    assert third.messages_read == 100 + sum(1 for m in new_inbox if b"\\Answered" in m.flags)
    assert set(third.sent_message_id_hashes) == {hash_message_id(m.message_id) for m in new_sent}
    # Only what is in the new mail (some colleagues/hidden recur: they are in new mail too).
    assert third.addresses == expected_contacts(new_sent) | expected_contacts(new_inbox)
    assert any(a.startswith("newfriend") for a in third.addresses)


def test_changed_uidvalidity_reads_the_folder_again(account: Account) -> None:
    first = account.harvester().harvest()
    state = json.loads(json.dumps(first.state))
    state["folders"]["Sent"]["uidvalidity"] += 1  # as after the server rebuilt the folder
    again = account.harvester().harvest(state)
    assert again.messages_read == N_SENT
    assert any("UIDVALIDITY" in w for w in again.warnings)


def test_state_of_another_account_is_ignored(account: Account) -> None:
    first = account.harvester().harvest()
    other = account.harvester(host="localhost").harvest(first.state)  # same server, other account key
    assert other.messages_read == first.messages_read


def test_without_special_use_the_sent_folder_is_found_by_name(dovecot_plain: DovecotServer) -> None:
    acct = Account(dovecot_plain, n_sent=400, n_inbox=50, sent_folder="Sent Items")
    with acct.client() as c:
        assert all(b"\\Sent" not in flags for flags, _, _ in c.list_folders())
        c.create_folder("Archive")
    harvester = acct.harvester()
    assert harvester.sent_folder_name() == "Sent Items"
    assert harvester.harvest().addresses == acct.expected()
    # The user's override wins, and a wrong one is named.
    assert acct.harvester(sent_folder="Archive").harvest().messages_read == sum(
        1 for m in acct.inbox if b"\\Answered" in m.flags)
    with pytest.raises(ContactsError, match=r"no folder 'Sent Mail 2019' \(it has: .*Sent Items"):
        acct.harvester(sent_folder="Sent Mail 2019").harvest()


def test_no_recognisable_sent_folder(dovecot_plain: DovecotServer) -> None:
    acct = Account(dovecot_plain, n_sent=5, n_inbox=5, sent_folder="Outbox archive")
    with pytest.raises(ContactsError, match="no Sent folder found"):
        acct.harvester().harvest()


def test_wrong_password(account: Account) -> None:
    with pytest.raises(ContactsError, match=r"refused the login of alice\d+@example.test with this password"):
        account.harvester(password="wrong").harvest()


def test_unreachable_server() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ContactsError, match=rf"cannot connect to IMAP server 127.0.0.1:{port}: .*refused"):
        ImapHarvester("127.0.0.1", port, security="none", username="x", password="y").harvest()


def test_server_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog) but never greets
        port = silent.getsockname()[1]
        with pytest.raises(ContactsError, match="did not answer within 0.5 s"):
            ImapHarvester("127.0.0.1", port, security="tls", username="x", password="y",
                          timeout=0.5).harvest()


def test_implicit_tls_and_starttls(account: Account, dovecot: DovecotServer) -> None:
    trusted = ssl.create_default_context(cafile=str(dovecot.cert_path))
    tls = account.harvester(port=dovecot.imaps_port, security="tls", ssl_context=trusted).harvest()
    starttls = account.harvester(security="starttls", ssl_context=trusted).harvest()
    assert tls.addresses == starttls.addresses == account.expected()
    # The system's trust store does not know the self-signed certificate: refused, not ignored.
    with pytest.raises(ContactsError, match="TLS with IMAP server .* failed: .*certificate verify failed"):
        account.harvester(port=dovecot.imaps_port, security="tls").harvest()
    with pytest.raises(ContactsError, match="STARTTLS with IMAP server .* failed: .*certificate verify failed"):
        account.harvester(security="starttls").harvest()


def test_starttls_against_a_server_without_it(dovecot_plain: DovecotServer) -> None:
    with pytest.raises(ContactsError, match="does not offer STARTTLS"):
        ImapHarvester("127.0.0.1", dovecot_plain.imap_port, security="starttls", username="x",
                      password="y").harvest()


def test_oauth2_token_login(account: Account) -> None:
    _Introspection.tokens[GOOD_TOKEN] = account.user
    result = account.harvester(password=None, oauth2_token=GOOD_TOKEN).harvest()
    assert result.addresses == account.expected()
    with pytest.raises(ContactsError, match="refused the login .* with this OAuth2 token"):
        account.harvester(password=None, oauth2_token="expired-token").harvest()


def test_dropped_connection_keeps_what_was_read_and_resumes(account: Account) -> None:
    # ~200 bytes of headers per message: cut the server's stream halfway through the Sent folder.
    with CuttingProxy(account.server.imap_port, cut_after=300_000) as proxy:
        with pytest.raises(ContactsError, match="connection to 127.0.0.1 was lost after") as failure:
            account.harvester(port=proxy.port).harvest()
        assert proxy.cuts == 1
    partial = failure.value.partial
    assert isinstance(partial, HarvestResult)
    assert 0 < partial.messages_read < N_SENT
    assert partial.state["folders"]["Sent"]["last_uid"] == partial.messages_read  # UIDs 1..n
    assert len(partial.sent_message_id_hashes) == partial.messages_read
    rest = account.harvester().harvest(partial.state)
    assert partial.messages_read + rest.messages_read == N_SENT + account.answered()
    assert partial.addresses | rest.addresses == account.expected()
    assert set(partial.sent_message_id_hashes) | set(rest.sent_message_id_hashes) == account.sent_hashes()
    assert not set(partial.sent_message_id_hashes) & set(rest.sent_message_id_hashes)


def test_imap_process_killed_mid_fetch(account: Account) -> None:
    """The server side dies (not the network): same outcome, a readable error and a resumable state."""
    killed: list[int] = []

    def kill_after_first_batch(done: int, total: int) -> None:
        if done > 0 and not killed:
            pids = account.server.imap_process_pids(account.user)
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    with pytest.raises(ContactsError, match="was lost after 500 messages") as failure:
        account.harvester().harvest(progress=kill_after_first_batch)
    partial = failure.value.partial
    assert partial is not None and partial.state["folders"]["Sent"]["last_uid"] == 500
    rest = account.harvester().harvest(partial.state)
    assert partial.addresses | rest.addresses == account.expected()


def test_cancel_stops_between_batches_and_resumes(account: Account) -> None:
    calls = {"n": 0}

    def cancel_after_two_batches() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    partial = account.harvester().harvest(cancelled=cancel_after_two_batches)
    assert partial.cancelled and partial.messages_read == 1000
    rest = account.harvester().harvest(partial.state)
    assert partial.addresses | rest.addresses == account.expected()
    assert rest.messages_read == N_SENT + account.answered() - 1000


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(ContactsError, match="security must be one of"):
        ImapHarvester("h", security="ssl", username="u", password="p")
    with pytest.raises(ContactsError, match="either an IMAP password or an OAuth2 token"):
        ImapHarvester("h", username="u")

"""`sendergate tags` against a real gateway process (issue 19 item 2): add prints the address to hand out,
mail to it is delivered with the tag, list shows what it received and from whom, revoke makes the gateway
refuse it (550 5.1.1) at once; every mistake is one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayProcess


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    with GatewayProcess(extra={"domains": {"recipient_delimiter": "-"}}) as g:
        g.store.add_user("alice@example.org")
        g.store.add_user("mary-ann@example.org")
        g.store.add_user("mary@example.org")
        g.store.add_user("bob@example.org")
        yield g


def cli(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendergate", *args, "--config", str(gw.config_path)],
                          capture_output=True, text=True, timeout=60, check=False)


def send(gw: GatewayProcess, rcpt: str) -> tuple[int, str]:
    msgid = f"<cli-{time.monotonic_ns()}@shop.example>"
    with gw.smtp() as s:
        assert s.mail("jane@shop.example")[0] == 250
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, text = s.data(f"From: jane@shop.example\r\nTo: {rcpt}\r\nSubject: Order\r\nMessage-ID: {msgid}"
                            "\r\n\r\nShipped.\r\n".encode())
        return code, text.decode()


def test_add_send_list_revoke(gw: GatewayProcess) -> None:
    r = cli(gw, "tags", "add", "alice@example.org", "Acme", "--expires", "30d")
    assert r.returncode == 0, r.stderr
    address = r.stdout.splitlines()[0]
    assert address == "alice-acme@example.org"  # the configured delimiter
    assert send(gw, address)[0] == 250
    assert gw.events()[-1].tag == "acme"
    listing = cli(gw, "tags", "list", "alice@example.org")
    assert listing.returncode == 0
    assert "alice-acme@example.org" in listing.stdout and "live until" in listing.stdout
    assert "received 1" in listing.stdout and "jane@shop.example (1)" in listing.stdout
    r = cli(gw, "tags", "revoke", "alice@example.org", "acme")
    assert r.returncode == 0 and "revoked alice-acme@example.org" in r.stdout
    code, text = send(gw, address)
    assert code == 550 and text.startswith("5.1.1")
    assert "revoked" in cli(gw, "tags", "list", "alice@example.org").stdout


def test_an_address_with_the_delimiter_of_its_own_is_no_tag(gw: GatewayProcess) -> None:
    """With "-" as delimiter, mary-ann@ is Mary-Ann's own address, not Mary's tag "ann"."""
    assert cli(gw, "tags", "add", "mary@example.org", "ann").returncode == 0
    code, text = send(gw, "mary-ann@example.org")
    assert code == 550 and "/c/" in text  # her own normal rules
    ev = gw.events()[-1]
    assert (ev.user_id, ev.tag) == (gw.store.user_by_address("mary-ann@example.org").id, None)
    assert send(gw, "mary-other@example.org")[0] == 550  # an unknown tag of Mary's: her normal rules
    assert gw.events()[-1].user_id == gw.store.user_by_address("mary@example.org").id


def test_dated(gw: GatewayProcess) -> None:
    r = cli(gw, "tags", "add", "alice@example.org", "fair", "--dated", "--expires", "7d")
    assert r.returncode == 0, r.stderr
    address = r.stdout.splitlines()[0]
    local = address.split("@")[0]
    assert local.startswith("alice-fair.") and len(local.split(".")) == 3
    assert send(gw, address)[0] == 250


@pytest.mark.parametrize("args, says", [
    (("add", "bob+x@example.org", "acme"), "without a tag"),
    (("add", "bob-x@example.org", "acme"), "without a tag"),
    (("add", "nobody@example.org", "acme"), "no user owns"),
    (("add", "@example.org", "acme"), "catch-all"),
    (("add", "bob@example.org", "../etc"), "a name is"),
    (("add", "bob@example.org", "a-b"), "delimiter"),  # the delimiter is "-" here
    (("add", "bob@example.org", "ok", "--expires", "soon"), "--expires"),
    (("add", "bob@example.org", "x" * 60), "at most 32"),
    (("list", "nobody@example.org"), "no user owns"),
    (("revoke", "bob@example.org", "never"), "no sign-up address"),
    (("add", "not an address", "acme"), "not a valid address"),
])
def test_mistakes_are_one_line(gw: GatewayProcess, args: tuple[str, ...], says: str) -> None:
    r = cli(gw, "tags", *args)
    assert r.returncode == 2 and says in r.stderr, (r.returncode, r.stderr)  # a usage error, not the store's 4
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_name_once_per_user(gw: GatewayProcess) -> None:
    assert cli(gw, "tags", "add", "bob@example.org", "twice").returncode == 0
    r = cli(gw, "tags", "add", "bob@example.org", "twice")
    assert r.returncode == 2 and "already" in r.stderr

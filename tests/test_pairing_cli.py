"""Pairing from the command line against a real gateway process (issue 16 item 1): `users invite` prints a
code and its links, the code pairs a device over HTTP, `users devices` lists it, `users revoke-device`
ends it, and `users token` replaces only the device "script"."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import GatewayProcess


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    with GatewayProcess() as g:  # __enter__ starts it
        yield g


def cli(gw: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendergate", *args, "--config", str(gw.config_path)],
                          capture_output=True, text=True, timeout=60, check=False)


def invite(gw: GatewayProcess, address: str, *extra: str) -> str:
    r = cli(gw, "users", "invite", address, *extra)
    assert r.returncode == 0, r.stderr
    m = re.search(r"\): ([2-9A-Z]{5}-[2-9A-Z]{5})$", r.stdout, re.M)
    assert m, r.stdout
    code = m.group(1)
    assert f"https://mx.example.org/pair#{code}" in r.stdout
    assert f"sendergate://pair?gateway=https%3A%2F%2Fmx.example.org&code={code}" in r.stdout
    return code


def pair(gw: GatewayProcess, code: str, device: str) -> httpx.Response:
    return httpx.post(gw.http_url + "/api/v1/pair", json={"code": code, "device": device}, timeout=10)


def me(gw: GatewayProcess, token: str) -> int:
    return httpx.get(gw.http_url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_invite_pair_list_revoke(gw: GatewayProcess) -> None:
    r = cli(gw, "users", "add", "alice@example.org")
    script_token = r.stdout.split("shown once):")[1].strip()
    code = invite(gw, "alice@example.org")
    r = pair(gw, code, "alice-laptop")
    assert r.status_code == 201, r.text
    laptop = r.json()["token"]
    assert me(gw, laptop) == 200
    assert pair(gw, code, "again").status_code == 404  # single use
    listing = cli(gw, "users", "devices", "alice@example.org").stdout
    assert re.search(r"^\s+\d+ script ", listing, re.M) and re.search(r"^\s+\d+ alice-laptop ", listing, re.M)
    # `users token` keeps today's meaning for scripts: it replaces the device "script", not the laptop
    r = cli(gw, "users", "token", "alice@example.org")
    assert r.returncode == 0 and "device 'script'" in r.stdout
    new_script = r.stdout.rsplit(":", 1)[1].strip()
    assert me(gw, new_script) == 200 and me(gw, laptop) == 200
    deadline = time.monotonic() + 30  # the gateway's token cache keeps a known token up to 10 s
    while me(gw, script_token) != 401:
        assert time.monotonic() < deadline, "the replaced token still works"
        time.sleep(0.5)
    # revoke the laptop by name: its next calls are refused once the cache lapses
    r = cli(gw, "users", "revoke-device", "alice@example.org", "alice-laptop")
    assert r.returncode == 0 and "revoked device" in r.stdout
    deadline = time.monotonic() + 30
    while me(gw, laptop) != 401:
        assert time.monotonic() < deadline, "the revoked device still works"
        time.sleep(0.5)
    assert "alice-laptop" not in cli(gw, "users", "devices", "alice@example.org").stdout
    r = cli(gw, "users", "revoke-device", "alice@example.org", "alice-laptop")
    assert r.returncode == 2 and "no device 'alice-laptop'" in r.stderr and "Traceback" not in r.stderr


def test_invite_creates_a_user_without_a_token(gw: GatewayProcess) -> None:
    r = cli(gw, "users", "invite", "bob@example.org", "--name", "Bob")
    assert r.returncode == 0 and "created user bob@example.org" in r.stdout
    assert "has no devices" in cli(gw, "users", "devices", "bob@example.org").stdout
    code = re.search(r"\): (\S+)$", r.stdout, re.M).group(1)  # type: ignore[union-attr]
    assert pair(gw, code, "bob's pc").json()["user"]["addresses"] == ["bob@example.org"]
    page = httpx.get(gw.http_url + "/pair", timeout=10)
    assert page.status_code == 200 and "Pair this computer" in page.text
    r = cli(gw, "users", "invite", "not an address")
    assert r.returncode != 0 and "not a valid address" in r.stderr and "Traceback" not in r.stderr


def test_a_users_mistake_is_a_usage_error_and_a_broken_store_is_the_stores(gw: GatewayProcess, tmp_path) -> None:
    """Exit 2 for what the user typed wrong (an address someone has: the store's Conflict), 4 only for a
    store that cannot be used: a script can tell "fix the command" from "fix the server"."""
    assert cli(gw, "users", "add", "twice@example.org").returncode == 0
    for args in (("users", "add", "twice@example.org"), ("users", "alias", "twice@example.org", "twice@example.org")):
        r = cli(gw, *args)
        assert r.returncode == 2 and "already belongs" in r.stderr, (args, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    config = tmp_path / "broken.toml"
    config.write_text(gw.config_path.read_text().replace(gw.store_url, f"sqlite:///{blocked}/state.db"))
    r = subprocess.run([sys.executable, "-m", "sendergate", "users", "add", "x@example.org", "--config", str(config)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 4 and "Traceback" not in r.stderr, (r.returncode, r.stderr)

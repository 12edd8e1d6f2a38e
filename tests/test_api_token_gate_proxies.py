"""The API's wrong-token limit and X-Forwarded-For (web/auth.py): behind http.trusted_proxies it counts per
forwarded client, so one guesser does not lock out everyone behind the proxy; from any other peer the header
is ignored, so a guesser cannot dodge the limit by making up a new address per request.

Real gateway processes over real HTTP; the proxy is played by loopback addresses.
"""

from __future__ import annotations

import httpx

from tests.support.gateway import GatewayProcess


def _client(gw: GatewayProcess, token: str, source: str, forwarded: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return httpx.Client(base_url=gw.http_url, headers=headers, timeout=10,
                        transport=httpx.HTTPTransport(local_address=source))


def test_behind_a_trusted_proxy_wrong_tokens_count_per_forwarded_client() -> None:
    with GatewayProcess(extra={"http": {"trusted_proxies": ["127.0.3.1"]}}) as gw:
        _, token = gw.store.add_user("alice@example.org")
        guesser = [_client(gw, f"guess{i:02d}" * 4, "127.0.3.1", "203.0.113.5").get("/api/v1/me").status_code
                   for i in range(11)]
        assert guesser == [401] * 10 + [429]
        # the proxy's other clients still get in; the guesser does not, even with a good token now
        assert _client(gw, token, "127.0.3.1", "203.0.113.6").get("/api/v1/me").status_code == 200
        assert _client(gw, token, "127.0.3.1", "203.0.113.5").get("/api/v1/me").status_code == 429
        assert "unknown token from 203.0.113.5" in gw.read_log()


def test_from_an_untrusted_peer_a_made_up_forwarded_for_does_not_escape_the_limit() -> None:
    with GatewayProcess(extra={"http": {"trusted_proxies": ["127.0.3.1"]}}) as gw:
        _, token = gw.store.add_user("alice@example.org")
        guesser = [_client(gw, f"guess{i:02d}" * 4, "127.0.3.2", f"198.51.100.{i}").get("/api/v1/me").status_code
                   for i in range(11)]
        assert guesser == [401] * 10 + [429]
        assert _client(gw, token, "127.0.3.2", "198.51.100.99").get("/api/v1/me").status_code == 429
        assert "unknown token from 127.0.3.2" in gw.read_log()


def test_a_wrong_token_cannot_put_control_characters_into_the_log() -> None:
    # The unknown-token warning names the path. URL parsing drops CR and LF, but a vertical tab, form feed or
    # U+2028 would start a new line for many log readers, and ESC drives the terminal of whoever reads the log.
    with GatewayProcess() as gw:
        forged = "2031-01-01 00:00:00,000 INFO sendergate.confirm: confirmed allowlisted=evil@x.test"
        for sep in ("%0B", "%0C", "%E2%80%A8", "%1B[2K%0D"):
            r = _client(gw, "guess" * 8, "127.0.3.3").get("/api/v1/allowlist/1" + sep + forged.replace(" ", "%20"))
            assert r.status_code == 401
        log = gw.read_log()
        assert log.count("unknown token from 127.0.3.3") == 4
        assert not any(c in log for c in "\x0b\x0c\u2028\x1b")
        assert not any(line.startswith("2031-01-01") for line in log.splitlines())

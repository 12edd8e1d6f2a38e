"""Configuration validation and the CLI's user-facing errors (run as real subprocesses)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sendergate.config import ConfigError, from_dict, parse_duration, parse_hostport, parse_size
from tests.support.common import free_loopback_port


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendergate", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sendergate.toml"
    p.write_text(text)
    return p


MINIMAL = '[domains]\nlocal = ["example.org"]\n'


def test_parsers() -> None:
    assert parse_duration("30s") == 30 and parse_duration("15m") == 900 and parse_duration("7d") == 604800
    assert parse_size("25MB") == 25_000_000 and parse_size("512KiB") == 524288
    assert parse_hostport("[::1]:25") == ("::1", 25)
    assert parse_hostport("::1", 53) == ("::1", 53)
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        parse_hostport("host:99999")


def test_sqlite_paths_are_absolute_as_documented() -> None:
    def url(u: str) -> str:
        return from_dict({"domains": {"local": ["x.example"]}, "store": {"url": u}}).store.url
    assert url("sqlite:///var/lib/sendergate/state.db") == "sqlite:////var/lib/sendergate/state.db"
    assert url("sqlite:////var/lib/sendergate/state.db") == "sqlite:////var/lib/sendergate/state.db"
    assert url("postgresql://u@127.0.0.1/db") == "postgresql://u@127.0.0.1/db"


def test_defaults_and_required_key() -> None:
    cfg = from_dict({"domains": {"local": ["Example.ORG"]}})
    assert cfg.domains.local == ["example.org"]
    assert cfg.smtp.max_message_size == 25_000_000 and cfg.challenge.ttl == 14 * 86400
    assert cfg.events.retention == 90 * 86400 and cfg.scan.on_failure == "tempfail"
    # SPEC §4.5 item 6: nothing internal is public by default, no proxy is believed by default
    assert cfg.http.metrics_public is False and cfg.http.trusted_proxies == []
    assert cfg.challenge.max_pending == 1000
    cfg = from_dict({"domains": {"local": ["example.org"]},
                     "http": {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]}})
    assert cfg.http.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]
    with pytest.raises(ConfigError) as err:
        from_dict({"domains": {"local": ["example.org"]}, "http": {"trusted_proxies": ["nginx.local"]},
                   "challenge": {"max_pending": -1}})
    assert {k for k, _ in err.value.problems} == {"http.trusted_proxies", "challenge.max_pending"}
    with pytest.raises(ConfigError) as err:
        from_dict({})
    assert err.value.problems[0][0] == "domains.local"


def test_every_problem_names_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"domains": {"local": ["example.org"]}, "smtp": {"listen": ["nohost"], "max_recipients": 0,
                                                                   "colour": "blue"},
                   "scan": {"clamd": "http://x", "on_failure": "ignore", "timeout": "0s"},
                   "challenge": {"reply": "{nope}"}, "bogus": {}})
    keys = {k for k, _ in err.value.problems}
    assert keys == {"smtp.listen", "smtp.max_recipients", "smtp.colour", "scan.clamd", "scan.on_failure",
                    "scan.timeout", "challenge.reply", "bogus"}


def test_check_config_cli(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL + f'[store]\nurl = "sqlite:///{tmp_path}/s.db"\n')
    r = run_cli("check-config", "--config", str(good))
    assert r.returncode == 0, r.stderr
    bad = write(tmp_path, MINIMAL + "[smtp]\nmax_recipents = 5\n")
    r = run_cli("check-config", "--config", str(bad))
    assert r.returncode != 0
    assert "smtp.max_recipents: unknown key" in r.stderr and "Traceback" not in r.stderr
    broken = write(tmp_path, "[smtp\n")
    r = run_cli("check-config", "--config", str(broken))
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_check_config_names_the_session_limit_keys(tmp_path: Path) -> None:
    """SPEC §3/§4.5: smtp.error_limit, smtp.max_connections_per_ip, smtp.xforward_from and the
    screened folder's name (a Maildir path element) are checked, each problem with its key."""
    good = write(tmp_path, MINIMAL + f'[store]\nurl = "sqlite:///{tmp_path}/s.db"\n[smtp]\nerror_limit = 5\n'
                 'max_connections_per_ip = 0\nxforward_from = ["127.0.0.1", "::1", "10.1.0.0/16"]\n'
                 '[delivery]\nscreened_folder = "Screened.Bulk"\n')
    r = run_cli("check-config", "--config", str(good))
    assert r.returncode == 0, r.stderr
    cfg = from_dict({"domains": {"local": ["example.org"]}})
    assert (cfg.smtp.error_limit, cfg.smtp.max_connections_per_ip, cfg.smtp.xforward_from) == (20, 20, [])
    bad = write(tmp_path, MINIMAL + '[smtp]\nerror_limit = -1\nmax_connections_per_ip = "many"\n'
                'xforward_from = ["127.0.0.1", "postfix.local"]\n[delivery]\nscreened_folder = "../x"\n')
    r = run_cli("check-config", "--config", str(bad))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    for key in ("smtp.error_limit", "smtp.max_connections_per_ip", "smtp.xforward_from",
                "delivery.screened_folder"):
        assert key in r.stderr, (key, r.stderr)
    assert "postfix.local" in r.stderr
    for folder in (".x", "x.", "a..b", "a/b"):
        with pytest.raises(ConfigError) as err:
            from_dict({"domains": {"local": ["example.org"]}, "delivery": {"screened_folder": folder}})
        assert err.value.problems[0][0] == "delivery.screened_folder", folder


def test_missing_config_and_unreachable_store_are_one_line(tmp_path: Path) -> None:
    r = run_cli("users", "list", "--config", str(tmp_path / "nope.toml"))
    assert r.returncode != 0 and "no such file" in r.stderr and "Traceback" not in r.stderr
    cfg = write(tmp_path, MINIMAL + '[store]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n')
    r = run_cli("users", "list", "--config", str(cfg))
    assert r.returncode != 0 and "store unreachable" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_users_and_lists_cli(tmp_path: Path) -> None:
    cfg = str(write(tmp_path, MINIMAL + f'[store]\nurl = "sqlite:///{tmp_path}/s.db"\n'))
    r = run_cli("users", "add", "alice@example.org", "--name", "Alice", "--config", cfg)
    assert r.returncode == 0 and "API token (shown once):" in r.stdout
    token = r.stdout.split("shown once):")[1].strip()
    assert len(token) >= 22
    r = run_cli("users", "add", "alice@example.org", "--config", cfg)
    assert r.returncode != 0 and "already belongs" in r.stderr
    assert run_cli("users", "alias", "alice@example.org", "ali@example.org", "--config", cfg).returncode == 0
    r = run_cli("users", "list", "--config", cfg)
    assert "alice@example.org" in r.stdout and "ali@example.org" in r.stdout
    r = run_cli("allow", "@Shop.Example", "--user", "alice@example.org", "--expires", "48h", "--config", cfg)
    assert r.returncode == 0 and "@shop.example allowed" in r.stdout and "until" in r.stdout
    r = run_cli("block", "spam@bad.example", "--global", "--config", cfg)
    assert r.returncode == 0 and "for everyone" in r.stdout
    r = run_cli("allow", "not an address", "--user", "alice@example.org", "--config", cfg)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    r = run_cli("allow", "bob@x.example", "--user", "nobody@example.org", "--config", cfg)
    assert r.returncode != 0 and "no user owns nobody@example.org" in r.stderr
    r = run_cli("users", "token", "alice@example.org", "--config", cfg)
    assert r.returncode == 0 and token not in r.stdout
    assert run_cli("users", "remove", "alice@example.org", "--config", cfg).returncode == 0
    assert "no users yet" in run_cli("users", "list", "--config", cfg).stdout


@pytest.mark.parametrize("cmd", [[], ["gateway"], ["users"], ["users", "add"], ["allow"], ["block"],
                                 ["check-config"], ["demo"], ["users", "token"]])
def test_help_everywhere(cmd: list[str]) -> None:
    r = run_cli(*cmd, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cfg = write(tmp_path, MINIMAL + f'[smtp]\nlisten = ["127.0.0.1:{port}"]\nworkers = 1\n'
                    f'[http]\nlisten = "127.0.0.1:{free_loopback_port()}"\n[store]\nurl = "sqlite:///{tmp_path}/s.db"\n')
        r = run_cli("gateway", "--config", str(cfg))
        assert r.returncode != 0
        assert f"smtp.listen 127.0.0.1:{port}: cannot listen: address already in use" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        busy.close()

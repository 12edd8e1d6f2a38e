"""`sendergate allow import` with real files and a real Dovecot, then the gateway uses the result."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from sendergate.store import Store
from tests.support import mailgen
from tests.support.dovecot import DovecotServer

CORPUS = Path(__file__).parent / "data" / "contacts"


def cli(cfg: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SENDERGATE_IMAP_PASSWORD"}
    if password is not None:
        env["SENDERGATE_IMAP_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "sendergate", *args, "--config", str(cfg)], capture_output=True,
                          text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Store]:
    cfg = tmp_path / "sendergate.toml"
    cfg.write_text(f'[domains]\nlocal = ["example.test"]\n[store]\nurl = "sqlite:///{tmp_path}/s.db"\n')
    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.migrate()
    store.add_user(mailgen.OWNER)
    return cfg, store


def allowed(store: Store) -> set[str]:
    user = store.user_by_address(mailgen.OWNER)
    return {str(e.pattern) for e in store.entries(user.id, "allow")}


def test_file_import_dry_run_then_real(setup: tuple[Path, Store]) -> None:
    cfg, store = setup
    r = cli(cfg, "allow", "import", str(CORPUS / "google.vcf"), "--user", mailgen.OWNER, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would allow ana.garcia@gmail.example" in r.stdout and allowed(store) == set()
    r = cli(cfg, "allow", "import", str(CORPUS / "google.vcf"), "--user", mailgen.OWNER)
    assert r.returncode == 0, r.stderr
    got = allowed(store)
    assert {"ana.garcia@gmail.example", "carlos@empresa.example"} <= got
    r = cli(cfg, "allow", "import", str(CORPUS / "google.vcf"), "--user", mailgen.OWNER)
    assert "allowed 0 new senders" in r.stdout and allowed(store) == got  # idempotent


def test_file_import_errors_are_one_line(setup: tuple[Path, Store], tmp_path: Path) -> None:
    cfg, _ = setup
    for bad in (tmp_path / "missing.vcf", CORPUS / "empty.csv"):
        r = cli(cfg, "allow", "import", str(bad), "--user", mailgen.OWNER)
        assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli(cfg, "allow", "import", str(CORPUS / "google.vcf"), "--global")
    assert r.returncode != 0 and "--user" in r.stderr


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    with DovecotServer() as server:
        server.add_user(mailgen.OWNER, "pw")
        with IMAPClient("127.0.0.1", port=server.imap_port, ssl=False) as imap:
            imap.login(mailgen.OWNER, "pw")
            mailgen.append(imap, "Sent", mailgen.sent_messages(300))
        yield server


def test_imap_import_records_contacts_and_sent_ids_and_resumes(setup: tuple[Path, Store],
                                                                 dovecot: DovecotServer) -> None:
    cfg, store = setup
    url = f"imap://{mailgen.OWNER.replace('@', '%40')}@127.0.0.1:{dovecot.imap_port}?security=none"
    r = cli(cfg, "allow", "import", url, "--user", mailgen.OWNER, password="wrong")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    r = cli(cfg, "allow", "import", url, "--user", mailgen.OWNER)  # no password, no terminal
    assert r.returncode != 0 and "SENDERGATE_IMAP_PASSWORD" in r.stderr
    r = cli(cfg, "allow", "import", url, "--user", mailgen.OWNER, password="pw")
    assert r.returncode == 0, r.stderr
    expected = mailgen.expected_contacts(mailgen.sent_messages(300))
    assert allowed(store) == expected
    user = store.user_by_address(mailgen.OWNER)
    first = next(mailgen.sent_messages(1))
    from sendergate.store import hash_message_id
    assert store.has_sent_id(user.id, [hash_message_id(first.message_id)])
    assert "sent Message-IDs recorded" in r.stdout
    r = cli(cfg, "allow", "import", url, "--user", mailgen.OWNER, password="pw")
    assert r.returncode == 0 and "0 addresses found" in r.stdout  # incremental: nothing new was read

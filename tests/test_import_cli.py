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


def test_role_like_addresses_saved_in_an_address_book_are_imported(setup: tuple[Path, Store], tmp_path: Path) -> None:
    """bookings@ is a role word for mail from strangers, but in the user's address book it is someone they
    chose to keep (issue 18): vCard and CSV both import it."""
    cfg, store = setup
    vcf = tmp_path / "vet.vcf"
    vcf.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Riverside Vet\r\nEMAIL:bookings@riverside-vet.example\r\n"
                   "END:VCARD\r\n")
    csv = tmp_path / "shop.csv"
    csv.write_text("First Name,Last Name,E-mail Address\r\nShop,Orders,Orders@Corner-Shop.example\r\n")
    for path in (vcf, csv):
        r = cli(cfg, "allow", "import", str(path), "--user", mailgen.OWNER)
        assert r.returncode == 0, r.stderr
        assert "skipped (machine role)" not in r.stdout
    assert {"bookings@riverside-vet.example", "orders@corner-shop.example"} <= allowed(store)


def test_55000_addresses_import_with_a_progress_bar_and_again_adds_nothing(setup: tuple[Path, Store],
                                                                           tmp_path: Path) -> None:
    """The size issue 18 names, with stderr on a terminal: the bar shows how far the import is."""
    import fcntl
    import pty
    import struct
    import termios
    cfg, store = setup
    addresses = [f"c{i:05d}@big{i % 37}.example" for i in range(55_000)]
    book = tmp_path / "55k.csv"
    book.write_text("First Name,Last Name,E-mail Address\r\n" + "".join(f"C,{i},{a}\r\n"
                                                                          for i, a in enumerate(addresses)))
    main, term = pty.openpty()
    fcntl.ioctl(term, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal with no width gets no bar
    try:
        proc = subprocess.Popen([sys.executable, "-m", "sendergate", "allow", "import", str(book), "--user",
                                 mailgen.OWNER, "--config", str(cfg)], stdout=subprocess.PIPE, stderr=term,
                                stdin=subprocess.DEVNULL, text=True)
        os.close(term)
        bar = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            bar += chunk
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.wait(timeout=120) == 0, bar.decode(errors="replace")
    finally:
        os.close(main)
    text = bar.decode(errors="replace")
    import re
    shown = [int(n) for n in re.findall(r"allowing:.*?(\d+)/55000", text)]
    assert 0 in shown and any(0 < n < 55_000 for n in shown) and 55_000 in shown, text[-2000:]  # each step
    assert f"allowed {len(addresses)} new senders" in out
    assert allowed(store) == set(addresses)
    r = cli(cfg, "allow", "import", str(book), "--user", mailgen.OWNER)
    assert "allowed 0 new senders" in r.stdout and len(allowed(store)) == len(addresses)

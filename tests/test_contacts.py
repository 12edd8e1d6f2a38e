"""Address-book files: the exact addresses each real-world export yields.

The corpus in tests/data/contacts/ copies each exporter's real layout (line
endings, charsets, quoting, header names); the Thunderbird abook.sqlite is
built here with Thunderbird's own schema.
"""

from __future__ import annotations

import codecs
import os
import sqlite3
from pathlib import Path

import pytest

from sendergate.contacts import (
    DUPLICATE,
    MACHINE_ROLE,
    OWN_ADDRESS,
    ContactsError,
    ImportResult,
    read_bytes,
    read_file,
)
from sendergate.policy.address import parse_pattern

pytestmark = pytest.mark.fast  # in process: no daemon, no subprocess

CORPUS = Path(__file__).parent / "data" / "contacts"
OWN = ["me@example.org"]

EXPECTED = {
    "macos_contacts.vcf": {
        "johnny@example.com", "j.appleseed@work.example", "zoe@xn--bcher-kva.example",
        "zoe.lefevre@icloud.example", "commandes@patisserie-dupont.example",
        "no-reply@patisserie-dupont.example",  # saved by the user: kept although the local part is a role
        ("long.address@a.subdomain.of.a.domain.name.that.apple.folds.because.the.line.exceeds"
         ".seventy-five.octets.example.org"),
    },
    "outlook_21.vcf": {
        "juergen.mueller@example.de", "jm@baeckerei.example", "bob.smith@example.com",
        "francoise.darc.avec.une.adresse.tres.longue.qui.depasse.la.ligne@exemple.fr",
        "mailer-daemon@exemple.fr",
    },
    "google.vcf": {
        "ana.garcia@gmail.example", "ana.garcia@empresa.example", "ana@otro.example",
        "carlos@empresa.example", "liam@xn--80ak6aa92e.example",
    },
    "contacts_40.vcf": {"grace@navy.example", "grace.home@example.net", "ada@analytical.example"},
    "folded.vcf": {"folded@example.org", "second@example.org"},
    "truncated.vcf": {"complete.one@example.com", "complete.two@example.com", "cut.off@example.com"},
    "wrong_encoding.vcf": {"jose.nunez@example.es"},
    "google.csv": {
        "ana.garcia@gmail.example", "ana@empresa.example", "ana.alt@otro.example",
        "wei.zhang@example.cn", "ok.entry@example.org", "noreply@tickets.example",
    },
    "google_legacy.csv": {"old.timer@example.com", "old.t@example.net", "timer@work.example"},
    "outlook.csv": {"renee.celik@example.com", "rcelik@example.com", "e.colleague@corp.example", "tom@tag.example",
                    "mailer-daemon@corp.example"},
    "outlook_de.csv": {"klaus@schaefer.example", "k.schaefer@privat.example"},
    "thunderbird.csv": {"linus@kernel.example", "torvalds@linux-foundation.example", "bare@example.net",
                        "bounces@lists.example"},
    "thunderbird.ldif": {"linus@kernel.example", "torvalds@linux-foundation.example", "juergen.mueller@example.de"},
    "names_only.csv": set(),
    "header_only.csv": set(),
}

SOURCES = {
    "macos_contacts.vcf": "vcard", "outlook_21.vcf": "vcard", "google.vcf": "vcard",
    "google.csv": "csv:google", "google_legacy.csv": "csv:google", "outlook.csv": "csv:outlook",
    "outlook_de.csv": "csv:generic", "thunderbird.csv": "csv:thunderbird", "thunderbird.ldif": "ldif",
}


def test_corpus_is_complete() -> None:
    """Every file in the corpus is checked here or in an error test: none is dead weight."""
    error_files = {"empty.csv", "only_begin.vcf"}
    on_disk = {p.name for p in CORPUS.iterdir() if not p.name.startswith(".")}
    assert on_disk == set(EXPECTED) | error_files


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_export_yields_exactly_its_addresses(name: str) -> None:
    result = read_file(CORPUS / name, own_addresses=OWN)
    assert result.addresses == EXPECTED[name]
    assert len(result.contacts) == len(result.addresses)  # no duplicates among contacts
    if name in SOURCES:
        assert result.source == SOURCES[name]
        assert {c.source for c in result.contacts} <= {SOURCES[name]}


@pytest.mark.parametrize("name", sorted(n for n, addrs in EXPECTED.items() if addrs))
def test_addresses_are_keys_the_gateway_matches(name: str) -> None:
    for contact in read_file(CORPUS / name).contacts:
        assert parse_pattern(contact.address).value == contact.address


def names(result: ImportResult) -> dict[str, str]:
    return {c.address: c.name for c in result.contacts}


def reasons(result: ImportResult) -> dict[str, str]:
    return {s.raw: s.reason for s in result.skipped}


def test_macos_vcard_groups_folding_idn_own_and_roles() -> None:
    result = read_file(CORPUS / "macos_contacts.vcf", own_addresses=OWN)
    assert names(result)["j.appleseed@work.example"] == "Johnny Appleseed"  # item1.EMAIL
    assert names(result)["zoe@xn--bcher-kva.example"] == "Zoë Lefèvre"
    # a role-like address the user saved is theirs to keep (issue 18); only mail harvests drop roles
    assert "no-reply@patisserie-dupont.example" in result.addresses
    assert reasons(result) == {"me@example.org": OWN_ADDRESS}
    # Without the own address given, it is a contact like any other.
    assert "me@example.org" in read_file(CORPUS / "macos_contacts.vcf").addresses


def test_outlook_21_quoted_printable_windows_1252() -> None:
    result = read_file(CORPUS / "outlook_21.vcf")
    by_address = names(result)
    assert by_address["juergen.mueller@example.de"] == "Jürgen Müller"  # raw 8-bit windows-1252
    long_one = "francoise.darc.avec.une.adresse.tres.longue.qui.depasse.la.ligne@exemple.fr"
    assert by_address[long_one] == "Françoise d'Arc"  # QP with CHARSET; address over a soft break
    assert "mailer-daemon@exemple.fr" in result.addresses and "MAILER-DAEMON@exemple.fr" not in reasons(result)
    assert reasons(result)["not an address"].startswith("invalid")
    # The AGENT card nested in Bob's card is Bob's assistant's data, not a contact of the user.
    assert "assistant.nested@example.com" not in result.addresses


def test_google_vcard_duplicates_tags_and_escapes() -> None:
    result = read_file(CORPUS / "google.vcf")
    assert [s for s in result.skipped if s.reason == DUPLICATE] == [
        type(result.skipped[0])("ana.garcia@gmail.example", DUPLICATE)]
    ana = next(c for c in result.contacts if c.address == "ana.garcia@gmail.example")
    assert ana.count == 2
    # `Ana.Garcia+news@Empresa.Example` is matched like the gateway matches it: tag off, lower case.
    assert "ana.garcia@empresa.example" in result.addresses
    assert names(result)["liam@xn--80ak6aa92e.example"] == "O'Brien, Liam"
    assert names(result)["carlos@empresa.example"] == ""


def test_vcard_40_mailto_members_and_quoted_parameters() -> None:
    result = read_file(CORPUS / "contacts_40.vcf")
    assert names(result)["grace@navy.example"] == "Dr. Grace Hopper"
    assert result.skipped == []  # the empty EMAIL is not an entry


def test_folded_lines_with_space_and_tab() -> None:
    assert names(read_file(CORPUS / "folded.vcf"))["folded@example.org"] == "Folded Person"


def test_truncated_vcard_keeps_every_card_and_says_so() -> None:
    result = read_file(CORPUS / "truncated.vcf")
    assert any("truncated" in w and "line 12" in w for w in result.warnings)
    assert any("line 9" in w for w in result.warnings)


def test_legacy_encoding_is_read_and_reported() -> None:
    result = read_file(CORPUS / "wrong_encoding.vcf")
    assert names(result) == {"jose.nunez@example.es": "José Núñez"}
    assert any("windows-1252" in w for w in result.warnings)


def test_google_csv_multi_value_cells() -> None:
    result = read_file(CORPUS / "google.csv")
    assert names(result)["ana@empresa.example"] == "Ana García"
    assert reasons(result) == {"bad entry@example": "invalid: invalid characters in local part"}


def test_outlook_csv_exchange_entries_roles_and_tags() -> None:
    result = read_file(CORPUS / "outlook.csv")
    assert names(result)["renee.celik@example.com"] == "Renée Çelik"
    skipped = reasons(result)
    assert "mailer-daemon@corp.example" not in skipped and "mailer-daemon@corp.example" in result.addresses
    assert any(raw.startswith("/o=ExchangeLabs") and why.startswith("invalid") for raw, why in skipped.items())
    # tom+newsletters@ and tom@ are one allowlist entry: the second is a duplicate.
    assert skipped["tom@tag.example"] == DUPLICATE


def test_outlook_unicode_csv_utf16_tab_separated(tmp_path: Path) -> None:
    """Outlook's "Unicode" CSV variant: UTF-16 LE with BOM, tab separated."""
    text = (CORPUS / "outlook.csv").read_bytes().decode("cp1252")
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text, newline="")))
    out = io.StringIO()
    csv.writer(out, delimiter="\t").writerows(rows)
    path = tmp_path / "outlook-unicode.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + out.getvalue().encode("utf-16-le"))
    result = read_file(path)
    assert result.source == "csv:outlook"
    assert result.addresses == EXPECTED["outlook.csv"]
    assert not any("windows-1252" in w for w in result.warnings)


def test_thunderbird_csv_own_address_with_tag() -> None:
    result = read_file(CORPUS / "thunderbird.csv", own_addresses=OWN)
    assert reasons(result) == {"Me+Thunderbird@Example.org": OWN_ADDRESS}


def test_csv_without_email_column_warns() -> None:
    result = read_file(CORPUS / "names_only.csv")
    assert result.contacts == [] and result.skipped == []
    assert any("no e-mail column" in w for w in result.warnings)


def test_bare_address_list(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("jane@example.com\njohn@example.net\n")
    assert read_file(path).addresses == {"jane@example.com", "john@example.net"}


# --- Thunderbird abook.sqlite ----------------------------------------------

# Thunderbird's schema (comm-central mailnews/addrbook/modules/SQLiteDirectory.sys.mjs).
ABOOK_SCHEMA = """
CREATE TABLE properties (card TEXT, name TEXT, value TEXT);
CREATE TABLE lists (uid TEXT PRIMARY KEY, name TEXT, nickName TEXT, description TEXT);
CREATE TABLE list_cards (list TEXT, card TEXT, PRIMARY KEY(list, card));
CREATE INDEX properties_card ON properties(card);
CREATE INDEX properties_name ON properties(name);
PRAGMA user_version = 3;
"""


def make_abook(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(ABOOK_SCHEMA)
    cards = {
        # Thunderbird 78-91: plain properties.
        "c1": {"FirstName": "Linus", "LastName": "Torvalds", "DisplayName": "Linus Torvalds",
               "PrimaryEmail": "linus@kernel.example", "SecondEmail": "torvalds@linux-foundation.example",
               "PopularityIndex": "12", "LastModifiedDate": "1700000000"},
        # Thunderbird 102+: the whole card as vCard 4.0, PrimaryEmail kept for searching.
        "c2": {"PrimaryEmail": "grace@navy.example", "DisplayName": "Grace Hopper",
               "_vCard": "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Grace Hopper\r\nEMAIL;PREF=1:grace@navy.example\r\n"
                         "EMAIL;TYPE=work:g.hopper@univac.example\r\nEND:VCARD\r\n"},
        "c3": {"_vCard": "BEGIN:VCARD\r\nVERSION:4.0\r\nN:Lovelace;Ada;;;\r\nEMAIL:ada@analytical.example\r\n"
                         "END:VCARD\r\n"},
        "c4": {"DisplayName": "Me", "PrimaryEmail": "ME@example.org"},
        "c5": {"DisplayName": "Linus again", "PrimaryEmail": "Linus@Kernel.example"},
        "c6": {"DisplayName": "Bank", "PrimaryEmail": "no-reply@bank.example"},
        "c7": {"DisplayName": "No mail at all", "WorkPhone": "+1 555 0102"},
    }
    for card, props in cards.items():
        db.executemany("INSERT INTO properties VALUES (?, ?, ?)", [(card, k, v) for k, v in props.items()])
    db.execute("INSERT INTO lists VALUES ('l1', 'Kernel folks', 'kernel', '')")
    db.executemany("INSERT INTO list_cards VALUES ('l1', ?)", [("c1",), ("c5",)])
    db.commit()
    db.close()


def test_thunderbird_abook_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "abook.sqlite"
    make_abook(path)
    result = read_file(path, own_addresses=OWN)
    assert result.source == "thunderbird"
    assert result.addresses == {"linus@kernel.example", "torvalds@linux-foundation.example",
                                "grace@navy.example", "g.hopper@univac.example", "ada@analytical.example",
                                "no-reply@bank.example"}
    assert names(result)["ada@analytical.example"] == "Ada Lovelace"
    assert names(result)["g.hopper@univac.example"] == "Grace Hopper"
    assert reasons(result) == {"ME@example.org": OWN_ADDRESS, "Linus@Kernel.example": DUPLICATE}


def test_abook_is_opened_read_only(tmp_path: Path) -> None:
    path = tmp_path / "abook.sqlite"
    make_abook(path)
    path.chmod(0o444)
    tmp_path.chmod(0o555)  # no -journal or -wal could be created next to it
    try:
        assert "ada@analytical.example" in read_file(path).addresses
    finally:
        tmp_path.chmod(0o755)


def test_sqlite_that_is_not_an_address_book(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE moz_places (id INTEGER, url TEXT)")
    db.commit()
    db.close()
    with pytest.raises(ContactsError, match="not a Thunderbird address book"):
        read_file(path)


def test_corrupt_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "abook.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(3000))
    with pytest.raises(ContactsError, match="abook.sqlite"):
        read_file(path)


# --- files a user should be told about -------------------------------------

def test_empty_file() -> None:
    with pytest.raises(ContactsError, match="is empty"):
        read_file(CORPUS / "empty.csv")


def test_vcard_without_any_card() -> None:
    with pytest.raises(ContactsError, match="no vCard could be read"):
        read_file(CORPUS / "only_begin.vcf")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ContactsError, match=r"cannot read .*nope\.vcf: No such file"):
        read_file(tmp_path / "nope.vcf")
    with pytest.raises(ContactsError, match="cannot read"):
        read_file(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.vcf"
    path.write_bytes((CORPUS / "folded.vcf").read_bytes())
    path.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads anything; drop to nobody in a child to see the real error
            pid = os.fork()
            if pid == 0:
                os.setuid(65534)
                try:
                    read_file(path)
                except ContactsError as exc:
                    os._exit(0 if "Permission denied" in str(exc) else 2)
                os._exit(1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        else:
            with pytest.raises(ContactsError, match="Permission denied"):
                read_file(path)
    finally:
        path.chmod(0o644)


def test_binary_and_old_mork_files(tmp_path: Path) -> None:
    garbage = tmp_path / "photo.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 20)
    with pytest.raises(ContactsError, match="not an address book"):
        read_file(garbage)
    mork = tmp_path / "abook.mab"
    mork.write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n< <(a=c)> // (f=iso-8859-1)\n")
    with pytest.raises(ContactsError, match="before version 78"):
        read_file(mork)


def test_invalid_own_address_is_a_user_error() -> None:
    with pytest.raises(ContactsError, match="own address"):
        read_file(CORPUS / "folded.vcf", own_addresses=["not-an-address"])


def test_read_bytes_matches_read_file() -> None:
    data = (CORPUS / "google.csv").read_bytes()
    assert read_bytes(data).addresses == EXPECTED["google.csv"]


def test_role_filter_is_for_harvested_mail_not_for_address_books() -> None:
    """bookings@ from the user's address book is someone they chose to keep; the same address seen in mail
    (an IMAP harvest's Collector) is still dropped as a machine role (issue 18)."""
    from sendergate.contacts import read_bytes
    from sendergate.contacts.model import Collector
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Vet\r\nEMAIL:bookings@riverside-vet.example\r\nEND:VCARD\r\n"
    assert read_bytes(card).addresses == {"bookings@riverside-vet.example"}
    harvested = ImportResult("imap")
    assert Collector(harvested, report_duplicates=False).add("bookings@riverside-vet.example") is None
    assert reasons(harvested) == {"bookings@riverside-vet.example": MACHINE_ROLE}

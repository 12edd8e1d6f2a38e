"""Importing an address book of 55,000 addresses: through the CLI and through the desktop app's import.

    .venv/bin/python -m tests.bench.bench_import [--addresses 55000] [--formats vcf,csv] [--paths cli,app]

Builds a vCard file and a CSV file holding `--addresses` distinct addresses (cards of one to three
addresses, some role-like local parts such as bookings@ that a person keeps, a few repeats and invalid
ones), then times, each on a fresh SQLite store:

- cli: `sendergate allow import FILE --user U` as a process (reading the file, adding the entries);
- app: what the desktop app's Import page does against a real gateway process: read the file, the
  dry-run preview (POST /allowlist/import dry_run, in chunks), then the import in chunks, as
  `sendergate.desktop.importing` and the page send them.

Then a second import of the same file (idempotent: nothing new). Target (issue 18): < 10 s per path.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sendergate.store import Store

OWNER = "owner@example.test"
ROLES = ("bookings", "orders", "billing", "info", "reservations")


def addresses(n: int) -> list[str]:
    out = []
    for i in range(n):
        if i % 97 == 0:
            out.append(f"{ROLES[i % len(ROLES)]}{i}@shop{i % 311}.example")
        else:
            out.append(f"person.{i}@dom{i % 1013}.example")
    return out


def write_vcf(path: Path, addrs: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        i = 0
        while i < len(addrs):
            k = 1 + i % 3
            f.write(f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Person{i};Test;;;\r\nFN:Test Person{i}\r\n")
            for a in addrs[i:i + k]:
                f.write(f"EMAIL;type=INTERNET:{a}\r\n")
            if i % 1000 == 0:
                f.write("EMAIL;type=INTERNET:not an address\r\n")
            f.write("END:VCARD\r\n")
            i += k


def write_csv(path: Path, addrs: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("First Name,Last Name,E-mail Address,E-mail 2 Address\r\n")
        for i in range(0, len(addrs), 2):
            pair = addrs[i:i + 2] + [""]
            f.write(f"Test,Person{i},{pair[0]},{pair[1]}\r\n")


def fresh_store(work: Path, name: str) -> tuple[Path, str]:
    db = work / f"{name}.db"
    for p in work.glob(f"{name}.db*"):
        p.unlink()
    url = f"sqlite:///{db}"
    store = Store(url)
    store.migrate()
    store.add_user(OWNER)
    store.close()
    cfg = work / f"{name}.toml"
    cfg.write_text(f'[domains]\nlocal = ["example.test"]\n[store]\nurl = "{url}"\n')
    return cfg, url


def count_allowed(url: str) -> int:
    store = Store(url)
    try:
        return len(store.entries(store.user_by_address(OWNER).id, "allow"))
    finally:
        store.close()


def run_cli(work: Path, src: Path) -> list[tuple[str, float, int]]:
    cfg, url = fresh_store(work, "cli")
    rows = []
    for label in ("first import", "again (idempotent)"):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "sendergate", "allow", "import", str(src), "--user", OWNER,
                            "--config", str(cfg)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        took = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"cli failed: {r.stderr}")
        rows.append((label, took, count_allowed(url)))
    return rows


def run_app(work: Path, src: Path) -> list[tuple[str, float, int]]:
    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.importing import IMPORT_CHUNK, ImportTally, chunked, read_address_book
    from tests.support.gateway import GatewayProcess

    _, url = fresh_store(work, "app")
    store = Store(url)
    _, token = store.add_user("app-" + OWNER)
    with store.engine.begin() as conn:  # the token acts for OWNER
        from sqlalchemy import text
        conn.execute(text("UPDATE api_tokens SET user_id = (SELECT user_id FROM user_addresses WHERE address = :o)"
                          " WHERE user_id = (SELECT user_id FROM user_addresses WHERE address = :a)"),
                     {"o": OWNER, "a": "app-" + OWNER})
    store.close()
    rows = []
    with GatewayProcess(store_url=url) as gw:
        client = GatewayClient(gw.http_url, token, timeout=120)
        for label in ("first import", "again (idempotent)"):
            t = time.perf_counter()
            read = read_address_book(client, str(src))
            t_preview = time.perf_counter() - t
            entries = [r.address for r in read.rows if r.status == "new"]
            tally = ImportTally(len(entries))
            for chunk in chunked(entries, IMPORT_CHUNK):
                tally.add(client.import_allow(list(chunk), note="bench").items)
            took = time.perf_counter() - t
            rows.append((f"{label} (preview {t_preview:.1f} s, {len(entries):,} sent)", took, count_allowed(url)))
        client.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--addresses", type=int, default=55_000)
    ap.add_argument("--formats", default="vcf,csv")
    ap.add_argument("--paths", default="cli,app")
    ap.add_argument("--work", default=None, help="scratch directory (default: a new temporary one)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        missed = run_all(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if missed else 0)


def run_all(args: argparse.Namespace, work: Path) -> bool:
    addrs = addresses(args.addresses)
    files = {"vcf": work / "contacts.vcf", "csv": work / "contacts.csv"}
    write_vcf(files["vcf"], addrs)
    write_csv(files["csv"], addrs)
    missed = False
    for fmt in args.formats.split(","):
        for path in args.paths.split(","):
            for label, took, allowed in {"cli": run_cli, "app": run_app}[path](work, files[fmt]):
                print(f"{fmt} {path:3} {label:55} {took:6.2f} s  ({allowed:,} allowed)", flush=True)
                missed |= label.startswith("first") and took >= 10
    return missed


if __name__ == "__main__":
    main()

"""A private PostgreSQL 15 cluster for tests and benchmarks.

    with PostgresServer() as server:
        url = server.create_database("sendergate")   # postgresql://postgres@127.0.0.1:PORT/sendergate

initdb and pg_ctl refuse to run as root, so as root they run as the
`postgres` system user; the cluster lives in a 0755 directory under /tmp
that stop() removes. Built for throwaway data: fsync off, 1 MB WAL segments.
The first server of a process runs initdb into a template that later
servers copy (about 2x faster under load, more when the machine is idle).
Failures raise ServiceError with the end of the server's log.
"""

from __future__ import annotations

import atexit
import os
import re
from pathlib import Path
from types import TracebackType

from tests.support.common import (
    ServiceError,
    failed_start,
    free_loopback_port,
    kill_and_wait,
    log_tail,
    make_service_dir,
    pid_alive,
    remove_service_dir,
    require_executable,
    run_checked,
)

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
# Database names we create are plain identifiers; anything else is a test bug.
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# bin_dir -> a cluster initdb made and nobody ever started (see _cluster_template).
_cluster_templates: dict[Path, Path] = {}
_PORT_ATTEMPTS = 3


class PostgresServer:
    """initdb + pg_ctl start on a free loopback port; stop() removes everything."""

    def __init__(self, bin_dir: Path = POSTGRES_BIN, start: bool = True) -> None:
        self.bin_dir = bin_dir
        self.initdb = require_executable(bin_dir / "initdb", "PostgreSQL 15 initdb")
        self.pg_ctl = require_executable(bin_dir / "pg_ctl", "PostgreSQL 15 pg_ctl")
        require_executable(bin_dir / "postgres", "PostgreSQL 15 server")
        self.port = 0
        self.base_dir: Path | None = None
        self.data_dir: Path | None = None
        self.socket_dir: Path | None = None
        self.log_file: Path | None = None
        self.databases: list[str] = []
        if start:
            self.start()

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> PostgresServer:
        if self.base_dir is not None:
            raise ServiceError("PostgresServer already started")
        self.base_dir = make_service_dir("sendergate-pg-")
        atexit.register(self.stop)
        try:
            self._init_cluster()
            self._start_server()
        except ServiceError as error:
            failure = failed_start(error, self.log_file)
            self.stop()
            raise failure from None
        except BaseException:
            self.stop()
            raise
        return self

    def _init_cluster(self) -> None:
        assert self.base_dir is not None
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "postgres.log"
        self.socket_dir.mkdir(mode=0o755)
        self.log_file.touch(mode=0o644)
        for owned in (self.socket_dir, self.log_file):
            self._give_to_postgres(owned)
        # A copy of a pristine cluster is a fresh cluster, ~10x cheaper than initdb.
        template = self._cluster_template()
        run_checked(["cp", "-a", template, self.data_dir], "copying the template cluster")

    def _cluster_template(self) -> Path:
        """One initdb per process and PostgreSQL build; later servers copy it."""
        template = _cluster_templates.get(self.bin_dir)
        if template is not None and template.exists():
            return template
        base = make_service_dir("sendergate-pg-template-")
        atexit.register(remove_service_dir, base)
        template = base / "data"
        template.mkdir(mode=0o700)
        self._give_to_postgres(template)
        run_checked(
            # 1 MB WAL segments instead of 16 MB: a third less to copy per server.
            [*self._as_postgres(), self.initdb, "--auth=trust", "--username=postgres",
             "--encoding=UTF8", "--locale=C", "--no-instructions", "--no-sync",
             "--wal-segsize=1", "-D", template],
            "initdb",
        )
        _cluster_templates[self.bin_dir] = template
        return template

    def _start_server(self) -> None:
        assert self.data_dir is not None and self.socket_dir is not None
        # The free port can be taken before postgres binds it (tests run in
        # parallel): then try another.
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_loopback_port()
            # fsync and friends off: the cluster is thrown away after the tests.
            options = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                run_checked(
                    [*self._as_postgres(), self.pg_ctl, "-w", "-t", "30", "-D", self.data_dir,
                     "-l", self.log_file, "-o", options, "start"],
                    "pg_ctl start",
                )
                return
            except ServiceError:
                if attempt == _PORT_ATTEMPTS or "Address already in use" not in log_tail(self.log_file):
                    raise

    def stop(self) -> None:
        """Stop the server (immediate: its data is discarded) and remove its directory."""
        atexit.unregister(self.stop)
        if self.base_dir is None:
            return
        try:
            pid = self._postmaster_pid()
            if pid is not None:
                try:
                    run_checked(
                        [*self._as_postgres(), self.pg_ctl, "-w", "-t", "10", "-D",
                         self.data_dir, "-m", "immediate", "stop"],
                        "pg_ctl stop",
                    )
                finally:
                    # pg_ctl may fail or time out; the postmaster must not outlive the test.
                    if pid_alive(pid):
                        kill_and_wait(pid)
        finally:
            remove_service_dir(self.base_dir)
            self.base_dir = None
            self.data_dir = None

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- use ---------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy-style URL (psycopg also accepts it as a conninfo)."""
        if self.base_dir is None:
            raise ServiceError("PostgresServer is not running")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its URL."""
        import psycopg
        from psycopg import sql

        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} is not a plain lower-case identifier")
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return self.url(name)

    # --- internals ---------------------------------------------------------

    @staticmethod
    def _as_postgres() -> list[str]:
        # initdb/pg_ctl refuse root; as an ordinary user they run as that user.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @staticmethod
    def _give_to_postgres(path: Path) -> None:
        if os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(path, account.pw_uid, account.pw_gid)

    def _postmaster_pid(self) -> int | None:
        if self.data_dir is None:
            return None
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

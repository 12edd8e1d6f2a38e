"""A real `sendergate gateway` process for tests: its own config, store and ports.

    gw = GatewayProcess(delivery=("maildir", str(dir)), store_url=...)
    gw.start(); gw.store.add_user("alice@example.org") ...; gw.stop()
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sendergate.store import Store
from tests.support.common import ServiceError, free_loopback_port, make_service_dir, remove_service_dir
from tests.support.dns_server import DNSTestServer

LOCAL_DOMAIN = "example.org"
_dns: DNSTestServer | None = None


def loopback_dns() -> DNSTestServer:
    """One DNS server on loopback for every test gateway: sender checks never leave 127.0.0.1."""
    global _dns
    if _dns is None:
        _dns = DNSTestServer().start()
        atexit.register(_dns.stop)
    return _dns


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))


class GatewayProcess:
    def __init__(self, *, delivery: tuple[str, str] | None = None, store_url: str | None = None,
                 workers: int = 1, extra: dict[str, dict[str, Any]] | None = None,
                 local_domains: tuple[str, ...] = (LOCAL_DOMAIN, "sub.example.org")) -> None:
        self.dir = make_service_dir("sendergate-gw-")
        self.smtp_port = free_loopback_port()
        self.http_port = free_loopback_port()
        self.store_url = store_url or f"sqlite:///{self.dir}/state.db"
        mode, target = delivery or ("maildir", str(self.dir / "maildir"))
        self.sections: dict[str, dict[str, Any]] = {
            "smtp": {"listen": [f"127.0.0.1:{self.smtp_port}"], "hostname": "mx.example.org", "workers": workers},
            "domains": {"local": list(local_domains)},
            "delivery": {"mode": mode, "target": target, "timeout": "10s"},
            "http": {"listen": f"127.0.0.1:{self.http_port}", "public_url": "https://mx.example.org"},
            "store": {"url": self.store_url},
            "challenge": {"allowlist_auth": "off"},
            "dns": {"nameservers": ["{}:{}".format(*loopback_dns().address)], "timeout": "2s"},
        }
        for name, values in (extra or {}).items():
            self.sections.setdefault(name, {}).update(values)
        self.config_path = self.dir / "sendergate.toml"
        write_config(self.config_path, self.sections)
        self.log_path = self.dir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_url)
            self._store.migrate()
        return self._store

    @property
    def maildir(self) -> Path:
        return self.dir / "maildir"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        if self.proc is not None and self.proc.poll() is None:
            # a second start would find the first one's "worker" line and SMTP answer, take the new (failing)
            # process for the gateway and leave the running one to outlive the test
            raise ServiceError("gateway already running; stop() it before starting it again")
        self.log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "sendergate", "gateway", "--config", str(self.config_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        workers = self.sections["smtp"].get("workers", 1) or len(os.sched_getaffinity(0))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"gateway exited with {self.proc.returncode}:\n{self.read_log()[-3000:]}")
            if self.read_log().count("sendergate: worker") >= workers:
                if self._smtp_answers():
                    return self
            time.sleep(0.05)
        raise ServiceError(f"gateway did not start within {timeout} s:\n{self.read_log()[-3000:]}")

    def _smtp_answers(self) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=2) as s:
                s.noop()
            return True
        except OSError:
            return False

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise ServiceError(f"gateway did not stop within {timeout} s on signal {sig}") from None
        code = self.proc.returncode
        self.proc = None
        self.log.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._store is not None:
                self._store.close()
            remove_service_dir(self.dir)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def smtp(self, timeout: float = 10) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=timeout)
        s.ehlo("client.test")
        return s

    def events(self) -> list[Any]:
        from sqlalchemy import select

        from sendergate.store import schema
        with self.store.engine.connect() as conn:
            return conn.execute(select(schema.events).order_by(schema.events.c.id)).all()

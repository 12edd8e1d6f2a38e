"""A real `sendergate milter` process for tests: its own config, store, milter socket and HTTP port.

    with MilterProcess(listen="inet") as m:      # or listen="unix" (a socket in its directory); workers=2
        m.store.add_user("alice@example.org")
        PostfixInstance(main_cf={"smtpd_milters": m.postfix_spec, ...})

Everything else as GatewayProcess (same config writer, store, events, close()).
"""

from __future__ import annotations

import grp
import os
import socket
import subprocess
import sys
import time
from typing import Any

from tests.support.common import ServiceError, free_loopback_port
from tests.support.gateway import GatewayProcess, write_config


class MilterProcess(GatewayProcess):
    def __init__(self, *, listen: str = "inet", extra: dict[str, dict[str, Any]] | None = None,
                 socket_group: str | None = "postfix", workers: int = 1, **kwargs: Any) -> None:
        super().__init__(extra=extra, **kwargs)
        self.socket_group = socket_group
        self.workers = workers  # milter.workers (the gateway's smtp.workers stays as GatewayProcess sets it)
        if listen == "inet":
            self.milter_port = free_loopback_port()
            self.listen = f"inet:127.0.0.1:{self.milter_port}"
        elif listen == "unix":
            self.milter_port = 0
            self.listen = f"unix:{self.dir}/milter.sock"
        else:
            self.milter_port = 0
            self.listen = listen
        self.sections.setdefault("milter", {}).setdefault("listen", self.listen)
        self.sections["milter"].setdefault("workers", workers)
        write_config(self.config_path, self.sections)

    @property
    def postfix_spec(self) -> str:
        """How Postfix names this milter in smtpd_milters."""
        return self.listen

    @property
    def address(self) -> str | tuple[str, int]:
        return self.listen[5:] if self.listen.startswith("unix:") else ("127.0.0.1", self.milter_port)

    def start(self, timeout: float = 20.0) -> MilterProcess:
        self.log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "sendergate", "milter", "--config", str(self.config_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"milter exited with {self.proc.returncode}:\n{self.read_log()[-3000:]}")
            ready = self.read_log().count("sendergate: milter ready")
            if ready >= (self.sections["milter"]["workers"] or len(os.sched_getaffinity(0))) and self._milter_answers():
                self._give_socket_group()
                return self
            time.sleep(0.05)
        raise ServiceError(f"milter did not start within {timeout} s:\n{self.read_log()[-3000:]}")

    def _give_socket_group(self) -> None:
        """What deployment.md has the admin do (Postfix's user in the milter's group), done here by
        giving the socket Postfix's group: the milter runs as root in tests, its socket is 0660."""
        if isinstance(self.address, str) and self.socket_group:
            os.chown(self.address, -1, grp.getgrnam(self.socket_group).gr_gid)

    def _milter_answers(self) -> bool:
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            try:
                s.connect(self.address)
                return True
            except OSError:
                return False

    def __enter__(self) -> MilterProcess:
        return self.start()

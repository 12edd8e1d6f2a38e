"""A loopback TCP proxy that cuts the connection after N bytes from the server.

Stands between a client and a real server to make "the server dropped the
connection mid-transfer" happen for real, at a chosen point, every time.
"""

from __future__ import annotations

import socket
import threading

from tests.support.common import ServiceError


class CuttingProxy:
    def __init__(self, target_port: int, cut_after: int | None, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.cut_after = cut_after  # bytes server -> client per connection; None = never
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._listener.settimeout(0.1)  # close() from another thread does not wake accept()
        self.cuts = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="cutting-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            raise ServiceError("cutting proxy did not stop")

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed by close()
            client.settimeout(None)
            server = socket.create_connection(self.target, timeout=10)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not upstream and self.cut_after is not None and sent + len(data) >= self.cut_after:
                    dst.sendall(data[: max(0, self.cut_after - sent)])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass  # the other direction closed the pair; nothing left to forward
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already shut down by the other pump
                s.close()

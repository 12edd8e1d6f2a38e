"""Scanner socket addresses, as `config.parse_socket_spec` returns them."""

from __future__ import annotations

import os

# ("unix", "/path") or ("tcp", (host, port))
SocketAddress = tuple[str, "str | tuple[str, int]"]


def describe(address: SocketAddress) -> str:
    """Back to the config's spelling, for messages: unix:/path or tcp:host:port."""
    _, where = address
    if isinstance(where, str):  # ("unix", path): the only kind with a plain string
        return f"unix:{where}"
    host, port = where
    return f"tcp:{host}:{port}"


def os_reason(exc: OSError) -> str:
    """"Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 3310)"."""
    return os.strerror(exc.errno) if exc.errno else str(exc)

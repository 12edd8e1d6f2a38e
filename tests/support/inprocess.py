"""The gateway's web app built in this process, for FastAPI's TestClient (the in-process API tier).

No gateway process, no uvicorn, no SMTP: the same app object the gateway serves, on a store of the
test's choosing. This is the one place that knows how the app is put together from a configuration;
when that changes (issue 14: `build_runtime(cfg)`), adapt `web_app` and nothing else.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sendergate.config import load
from sendergate.runtime import build_runtime
from sendergate.store import Store
from sendergate.web import create_app
from tests.support.gateway import write_config

# starlette 1.10 asks for httpx2 instead of httpx (pinned by the gateway itself); the client works the same
_HTTPX_NOTICE = "Using `httpx` with `starlette.testclient` is deprecated"

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=_HTTPX_NOTICE)
    from fastapi.testclient import TestClient


@dataclass
class WebApp:
    app: FastAPI
    store: Store

    def client(self, token: str | None = None, *, source: str = "127.0.0.1") -> TestClient:
        """A client of the app from `source` (the failed-token limit counts per client address)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_HTTPX_NOTICE)
            return TestClient(self.app, base_url="http://mx.example.org", headers=headers, client=(source, 50000),
                              raise_server_exceptions=True)


@contextmanager
def web_app(directory: Path, store_url: str | None = None,
            extra: dict[str, dict[str, Any]] | None = None) -> Iterator[WebApp]:
    """The web app on `store_url` (default: a new SQLite file in `directory`), migrated and empty."""
    sections: dict[str, dict[str, Any]] = {
        "smtp": {"listen": ["127.0.0.1:2525"], "hostname": "mx.example.org", "workers": 1},
        "domains": {"local": ["example.org"]},
        "delivery": {"mode": "maildir", "target": str(directory / "maildir")},
        "http": {"listen": "127.0.0.1:8025", "public_url": "https://mx.example.org"},
        "store": {"url": store_url or f"sqlite:///{directory}/state.db"},
        "challenge": {"allowlist_auth": "off"},
    }
    for name, values in (extra or {}).items():
        sections.setdefault(name, {}).update(values)
    path = directory / "sendergate.toml"
    write_config(path, sections)
    # Metrics keeps its files under SENDERGATE_METRICS_DIR and names them in PROMETHEUS_MULTIPROC_DIR,
    # process-wide: kept inside the test's directory and put back afterwards.
    saved = {k: os.environ.get(k) for k in ("SENDERGATE_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR")}
    os.environ["SENDERGATE_METRICS_DIR"] = str(directory)
    rt = build_runtime(load(path))
    try:
        rt.store.migrate()
        yield WebApp(create_app(rt), rt.store)
    finally:
        if rt.authenticator is not None:
            rt.authenticator.close()
        rt.metrics.close()
        rt.store.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

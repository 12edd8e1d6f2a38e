"""resources/docs/reference.md cannot rot: every route it lists is in the gateway's OpenAPI document with
that method, every command it lists parses, every configuration key it lists exists with the default
it states, and `observed` is a verdict of the API (issue 16 item 7)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sendergate.cli import build_parser
from sendergate.config import Config
from sendergate.policy.decide import Verdict
from tests.support.inprocess import web_app

pytestmark = pytest.mark.fast

DOC = (Path(__file__).resolve().parents[2] / "resources" / "docs" / "reference.md").read_text(encoding="utf-8")


def section(title: str) -> list[list[str]]:
    """The table rows (cells) under a `## title` heading."""
    body = DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[1:]]


def test_every_listed_route_is_in_openapi(tmp_path):
    with web_app(tmp_path) as web:
        paths = {re.sub(r"\{\w+\}", "{}", p): ops for p, ops in web.app.openapi()["paths"].items()}
    found = 0
    for cells in section("API routes"):
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^` ?]+)", cells[0]):
            full = re.sub(r"\{\w+\}", "{}", path if path.startswith("/healthz") else "/api/v1" + path)
            assert method.lower() in paths.get(full, {}), f"{method} {full} is not in /openapi.json"
            found += 1
        for name in re.findall(r"`\?(\w+)=", cells[0]):  # a query parameter on the routes named after it
            for path in re.findall(r"`GET (/\w+)`", cells[0]):
                params = paths["/api/v1" + path]["get"].get("parameters", [])
                assert name in {p["name"] for p in params}, f"?{name} on {path}"
    assert found >= 12


def test_every_listed_command_parses():
    parser = build_parser()
    placeholders = {"ADDRESS": "a@example.org", "NAME|ID": "laptop", "enforce|observe|off|default": "observe",
                    "unix:PATH|inet:HOST:PORT": "unix:/tmp/m.sock", "S": "3", "N": "Ann", "F": "tag"}
    for cells in section("Commands"):
        words = shlex.split(cells[0].strip("`").replace("\\|", "|"))[1:]  # without "sendergate"
        argv = []
        for w in words:
            w = w.strip("[]")
            argv.append(placeholders.get(w, w))
        argv = [a for a in argv if a not in ("[ADDRESS]", "")]
        parser.parse_args(argv)  # exits (fails the test) on an unknown command or option


def test_every_listed_key_exists_with_its_default():
    cfg = Config()
    for cells in section("Configuration keys"):
        group, key = cells[0].strip("`").split(".")
        assert hasattr(getattr(cfg, group), key), cells[0]
        default, actual = cells[1].strip("`"), getattr(getattr(cfg, group), key)
        if default.startswith('"') and key != "socket_mode" and key != "link_ttl":
            assert actual == default.strip('"'), (cells[0], actual)
        elif default in ("true", "false"):
            assert actual is (default == "true"), cells[0]
        elif default.isdigit():
            assert actual == int(default), cells[0]


def test_observed_is_a_verdict():
    assert Verdict("observed") and "`observed`" in DOC

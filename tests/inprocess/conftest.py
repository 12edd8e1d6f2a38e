"""The in-process tier (issue 14 item 6): the SMTP handler and server class driven inside the test process,
over a loopback socket, with fakes for the parts that talk to other daemons. Every test here is marked
`inprocess`: `pytest -m inprocess` runs the fast tier alone, in seconds. The real-process tests
(tests/test_gateway_*.py, tests/adversary/) stay the end-to-end proof."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "inprocess: the fast tier: no gateway process, no daemons (tests/inprocess/)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/inprocess/" in item.nodeid:
            item.add_marker(pytest.mark.inprocess)

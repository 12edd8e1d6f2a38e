"""The in-process SMTP tier (issue 14 item 6): the handler and the server class driven inside the test
process, over a loopback socket, with fakes for the parts that talk to other daemons; marked `fast`
(`-m fast` runs every in-process tier). The real-process tests (tests/test_gateway_*.py,
tests/adversary/) stay the end-to-end proof."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml declares `fast` on main (the lint branch); declared here too until both have landed
    config.addinivalue_line("markers", "fast: in process, no subprocess")

"""Log values a sender controls (Subject, HELO, addresses) cannot start a line or drive a terminal."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendergate.logformat import kv

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("char", ["\n", "\r", "\x0b", "\x0c", "\x1b", "\x85", "\u2028", "\u2029", "\u202e", "\u2066"])
def test_no_line_end_or_control_reaches_the_log_raw(char: str) -> None:
    out = kv(f"Invoice{char}decision verdict=delivered")
    assert char not in out
    assert json.loads(out) == f"Invoice{char}decision verdict=delivered"  # nothing lost: it reads back


@given(st.text())
def test_every_value_reads_back_and_stays_on_one_line(value: str) -> None:
    out = kv(value)
    assert out.splitlines() == [out]  # str.splitlines knows every line end Unicode has
    assert (json.loads(out) if out.startswith('"') else out) == value

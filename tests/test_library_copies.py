"""Guards for the copies of library internals (issue 14, deliverable 5): the gateway refuses to run with
an aiosmtpd other than the one smtp/server.py copies, or, when it asks spamd, an aiospamc other than the
one scan/spamd.py copies. (The DATA reader's and the header fast paths' differential tests are
test_data_reader_differential.py and test_header_fast_paths.py.)"""

from __future__ import annotations

import aiosmtpd
import aiospamc
import pytest

from sendergate import gateway
from sendergate.config import from_dict
from sendergate.scan.spamd import AIOSPAMC_VERSION
from sendergate.smtp.server import AIOSMTPD_VERSION, library_copies_ok

pytestmark = pytest.mark.fast  # in process: no daemon, no subprocess


def test_the_installed_aiosmtpd_is_the_one_the_copies_were_made_from() -> None:
    assert aiosmtpd.__version__ == AIOSMTPD_VERSION
    assert library_copies_ok() == ""


def test_another_aiosmtpd_stops_the_gateway_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosmtpd, "__version__", "1.4.7")
    assert "aiosmtpd 1.4.7 is installed" in library_copies_ok()
    cfg = from_dict({"domains": {"local": ["example.org"]}, "store": {"url": "sqlite:////nonexistent/x.db"}})
    with pytest.raises(gateway.StartupError, match=r"copies parts of aiosmtpd 1\.4\.6"):
        gateway.run(cfg)  # refused before it touches the store or a socket


def test_the_installed_aiospamc_is_the_one_the_copy_was_made_from() -> None:
    assert aiospamc.__version__ == AIOSPAMC_VERSION
    assert gateway.library_copies_problem(from_dict({"domains": {"local": ["example.org"]},
                                                     "scan": {"spamd": "tcp:127.0.0.1:783"}})) == ""


def test_another_aiospamc_stops_a_gateway_that_asks_spamd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiospamc, "__version__", "1.3.0")
    without = from_dict({"domains": {"local": ["example.org"]}})
    assert gateway.library_copies_problem(without) == ""  # the copy is not used: no reason to refuse
    cfg = from_dict({"domains": {"local": ["example.org"]}, "store": {"url": "sqlite:////nonexistent/x.db"},
                     "scan": {"spamd": "tcp:127.0.0.1:783"}})
    with pytest.raises(gateway.StartupError, match=r"aiospamc 1\.3\.0 is installed, but scan/spamd\.py copies"):
        gateway.run(cfg)  # refused before it touches the store or a socket

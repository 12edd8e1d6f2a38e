"""metrics.Metrics holds the SMTP side's counts per worker and adds them to prometheus_client's shared
files every FLUSH_EVERY (issue 18 item 1): what /metrics renders is what observing each value at once
gives, bucket by bucket, including values exactly on a bucket's bound. Run in a process of its own:
Metrics switches prometheus_client into multi-process mode for the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import asyncio, json, sys
import sendergate.metrics
from sendergate.metrics import LATENCY_BUCKETS, Metrics

if sys.argv[1] == "other":  # a prometheus-client the held layout was not read from
    sendergate.metrics.PROMETHEUS_CLIENT_HELD = "0.0.0-not-installed"
m = Metrics(workers=1)

def in_files(name='sendergate_smtp_verdicts_total{verdict="challenged"}'):
    # a count as another worker's scrape reads it from the shared files (no flush of ours)
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(m.dir))
    for line in generate_latest(reg).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
values = [0.0, 0.001, 0.0010001, 0.0025, 0.7, 1, 30, 60, 61.5, 1e-9]
out = {}

async def main():
    for v in values:
        m.observe_data(v)
        m.observe_delivery(v, ok=v < 1)
    for verdict in ["challenged", "challenged", "delivered"]:
        m.count(verdict)
    m.session_opened(); m.session_opened(); m.session_closed()
    out["held"] = in_files()
    out["held_data"] = in_files("sendergate_smtp_data_seconds_count")
    await asyncio.sleep(0.3)  # FLUSH_EVERY passes: the loop's timer flushes
    out["flushed"] = in_files()
    out["text"] = m.render().decode()
    m.observe_data(0.5)  # outside any loop: at once
    out["after"] = m.render().decode()

asyncio.run(main())
out["values"] = values
out["buckets"] = [*LATENCY_BUCKETS, float("inf")]
m.close()
print(json.dumps(out))
"""


def sample(text: str, name: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
    return float(line.split()[-1])


def test_the_installed_prometheus_client_is_the_one_the_held_layout_was_read_from() -> None:
    from importlib.metadata import version

    from sendergate.metrics import PROMETHEUS_CLIENT_HELD
    assert version("prometheus-client") == PROMETHEUS_CLIENT_HELD, "re-read Metrics.flush against it, then update"


@pytest.mark.parametrize("client", ["installed", "other"])
def test_held_counts_render_as_counts_observed_at_once(tmp_path: Path, client: str) -> None:
    """With the version the held layout was read from, and with another (histograms then observed at once)."""
    env = {**os.environ, "SENDERGATE_METRICS_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", SCRIPT, client], capture_output=True, text=True, env=env,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert (out["held"], out["flushed"]) == (0, 2)  # held in the worker first, then in the shared files
    # histograms: held with the version read, at once (the public observe) with any other
    assert out["held_data"] == (0 if client == "installed" else len(out["values"]))
    text, values = out["text"], out["values"]
    for le in out["buckets"]:
        label = "+Inf" if le == float("inf") else repr(float(le))
        assert sample(text, f'sendergate_smtp_data_seconds_bucket{{le="{label}"}}') == sum(v <= le for v in values)
        assert sample(text, f'sendergate_delivery_seconds_bucket{{le="{label}",result="ok"}}') == sum(
            v <= le for v in values if v < 1)
    assert sample(text, "sendergate_smtp_data_seconds_count") == len(values)
    assert abs(sample(text, "sendergate_smtp_data_seconds_sum") - sum(values)) < 1e-9
    assert sample(text, 'sendergate_delivery_seconds_count{result="failed"}') == sum(v >= 1 for v in values)
    assert sample(text, 'sendergate_smtp_verdicts_total{verdict="challenged"}') == 2
    assert sample(text, 'sendergate_smtp_verdicts_total{verdict="delivered"}') == 1
    assert sample(text, "sendergate_smtp_sessions_total") == 2
    assert sample(text, "sendergate_smtp_open_sessions") == 1
    assert sample(out["after"], "sendergate_smtp_data_seconds_count") == len(values) + 1

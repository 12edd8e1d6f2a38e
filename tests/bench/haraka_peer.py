"""Haraka 3.x as a benchmark peer: the SMTP server a user would most likely build this gateway on.

Installed by the benchmark (never by the test suite) with npm into a cache directory
(`$SENDERGATE_BENCH_CACHE`, else `$XDG_CACHE_HOME/sendergate-bench`, else `~/.cache/sendergate-bench`),
once; npm uses whatever registry this machine's npm is configured with. Two setups, each its own
instance directory and `nodes=2` (one worker per core, as the gateway runs):

- "refuse": rcpt_to.in_host_list accepts example.org, a `data_post` plugin denies every message
  with a link-sized text (what the gateway's unknown-sender refusal says, without storing anything);
- "forward": rcpt_to.in_host_list, then queue/smtp_forward to a downstream (250 after its 250).

Logging stays at Haraka's shipped default level (info), written to a file, as a user would run it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.common import free_loopback_port, make_service_dir, wait_for_port

HARAKA_SPEC = "Haraka@3"

# about as long as the gateway's refusal: the reason, the address, a link with a 43-character token
DENY_TEXT = ("5.7.1 alice@example.org screens first-time senders. To reach alice@example.org, confirm once at "
             "https://gateway.example.org/c/Qm9vdHN0cmFwIHRva2VuIGZvciB0aGUgYmVuY2htYXJr")

DENY_PLUGIN = f"""// refuses every message at end of DATA with a link-sized text (benchmark peer)
exports.hook_data_post = function (next, connection) {{
    next(DENY, {DENY_TEXT!r});
}};
"""


def cache_dir() -> Path:
    explicit = os.environ.get("SENDERGATE_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sendergate-bench"


def ensure_haraka() -> Path:
    """The haraka executable, installed with npm into the cache directory on first use."""
    prefix = cache_dir() / "haraka3"
    exe = prefix / "node_modules" / ".bin" / "haraka"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("the Haraka peer needs Node.js and npm (Debian: apt-get install nodejs npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--omit=dev",
                        HARAKA_SPEC], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not exe.exists():
        raise SystemExit(f"npm install {HARAKA_SPEC} failed:\n{r.stdout[-1000:]}\n{r.stderr[-2000:]}")
    return exe


def haraka_version(exe: Path) -> str:
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    text = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr).strip()
    return text.splitlines()[0] if text else "?"


class HarakaPeer:
    """One Haraka instance on a free loopback port (stop() ends it and removes its directory)."""

    def __init__(self, exe: Path, mode: str, *, downstream_port: int = 0, nodes: int = 2) -> None:
        if mode not in ("refuse", "forward"):
            raise ValueError(mode)
        self.dir = make_service_dir(f"sendergate-bench-haraka-{mode}-")
        inst = self.dir / "inst"
        subprocess.run([str(exe), "-i", str(inst)], check=True, capture_output=True, timeout=120)
        cfg = inst / "config"
        self.port = free_loopback_port()
        (cfg / "smtp.ini").write_text(f"[main]\nlisten=127.0.0.1:{self.port}\nnodes={nodes}\n")
        (cfg / "host_list").write_text("example.org\n")
        (cfg / "me").write_text("haraka.bench.test\n")
        plugins = ["rcpt_to.in_host_list"]
        if mode == "refuse":
            (inst / "plugins" / "deny_with_link.js").write_text(DENY_PLUGIN)
            plugins.append("deny_with_link")
        else:
            (cfg / "smtp_forward.ini").write_text(
                f"host=127.0.0.1\nport={downstream_port}\nenable_tls=false\n")
            plugins.append("queue/smtp_forward")
        (cfg / "plugins").write_text("\n".join(plugins) + "\n")
        self.log = self.dir / "haraka.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([str(exe), "-c", str(inst)], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            wait_for_port(self.port, 60, f"Haraka ({mode})", alive=lambda: self.proc.poll() is None)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the master and its cluster workers
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

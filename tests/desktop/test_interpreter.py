"""The PySide6 reference bug the desktop app works around (sendergate/desktop/interpreter.py).

Each check runs in a process of its own: without the workaround the interpreter aborts.
"""

from __future__ import annotations

import os
import subprocess
import sys

# 20,000 emits of an `object` signal (each takes a reference from True) and 20,000 Python slots run
# by a QTimer (each takes one from None): what a long session of background operations does
WORKLOAD = """
import sys
{prepare}
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
app = QCoreApplication([])
class Relay(QObject):
    done = Signal(object, object, str)
relay, got = Relay(), []
relay.done.connect(lambda result, exc, tb: got.append(result))
for _ in range(20_000):
    relay.done.emit((1,), None, "")
ticks = [0]
def tick():
    ticks[0] += 1
    if ticks[0] >= 20_000:
        app.quit()
timer = QTimer()
timer.setInterval(0)
timer.timeout.connect(tick)
timer.start()
app.exec()
print("survived", len(got), ticks[0], sys.getswitchinterval())
"""


def run(prepare: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", WORKLOAD.format(prepare=prepare)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_app_survives_what_aborts_a_plain_pyside6_process() -> None:
    fixed = run("import sendergate.desktop")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert fixed.stdout.split() == ["survived", "20000", "20000", "0.001"]
    plain = run("")
    # when this fails, PySide6 no longer drops the references: interpreter.py's workaround can go
    assert plain.returncode != 0 and "deallocating" in plain.stderr, (plain.returncode, plain.stderr[-500:])

"""`hscode serve` shutdown: every child stops within one grace period, even one that hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from hscode.serve import _stop

POLITE = "import time\nwhile True: time.sleep(0.1)"  # KeyboardInterrupt on SIGINT ends it
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(0.1)"
)


def test_stop_kills_a_child_that_ignores_sigint_after_one_shared_grace_period():
    polite = subprocess.Popen([sys.executable, "-c", POLITE])
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert stubborn.stdout.readline().strip() == b"ready"  # its SIGINT handler is in place
    time.sleep(0.5)  # the polite child is inside its loop
    _stop([polite, stubborn], grace_s=1.0)
    assert polite.returncode == -signal.SIGINT  # it stopped on the SIGINT itself
    assert stubborn.returncode == -9  # it ignored the SIGINT and was killed after the grace

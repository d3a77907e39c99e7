"""`hscode serve` shutdown: every child stops within one grace period, even one that hangs."""

from __future__ import annotations

import signal
import subprocess
import sys

from app.serve import _stop

# KeyboardInterrupt on SIGINT ends it. The handler is set explicitly: a child of a
# background job (`make test &` in a non-interactive shell) inherits SIGINT ignored, and
# Python then installs no KeyboardInterrupt handler of its own
POLITE = (
    "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(0.1)"
)
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(0.1)"
)


def test_stop_kills_a_child_that_ignores_sigint_after_one_shared_grace_period():
    polite = subprocess.Popen([sys.executable, "-c", POLITE], stdout=subprocess.PIPE)
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    # both are past start-up (a loaded machine can take seconds) with their SIGINT handlers
    assert polite.stdout.readline().strip() == b"ready"
    assert stubborn.stdout.readline().strip() == b"ready"
    _stop([polite, stubborn], grace_s=2.0)
    assert polite.returncode == -signal.SIGINT  # it stopped on the SIGINT itself
    assert stubborn.returncode == -9  # it ignored the SIGINT and was killed after the grace

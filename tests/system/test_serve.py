"""`hscode serve` shutdown: every child stops within one grace period, even one that hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

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


# ----------------------------------------------------------------- `hscode report`

CANDIDATE_NOT_PROMOTED = (
    "not promoted: could be worse than the champion by more than the margin 0.020 on 380 test "
    "cases neither model used; top-1 difference -0.0300 (95% interval -0.0550 .. -0.0050)"
)


class _Saveable:
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "weights.bin").write_text("w")


def _coverage(*thresholds: float) -> list[dict[str, float]]:
    return [{"threshold": t, "coverage": 1 - t / 2, "accuracy": 0.8, "n": 10} for t in thresholds]


def _registry_with_an_unpromoted_newest_version(settings):
    """v0001 the champion (promoted: first model); v0002, newer, kept out by the gate, its
    comparison with v0001 only in its report.json (as ``train_and_register`` writes it)."""
    from hscode.registry import Registry

    registry = Registry.from_settings(settings)
    metrics = {"test_top1": 0.8, "test_top3": 0.9, "n_test": 400}
    first = registry.register(
        _Saveable(),
        metrics,
        {"level": "hs10", "gate": {"promoted": True, "reason": "promoted: first model"}},
    )
    registry.promote(first, "promoted: first model")
    registry.write_report(first, {"test": {"coverage": _coverage(0.0, 0.35, 0.5, 0.9)}})
    newest = registry.register(
        _Saveable(),
        metrics | {"test_top1": 0.77},
        {"level": "hs10", "gate": {"promoted": False, "reason": CANDIDATE_NOT_PROMOTED}},
    )
    comparison = {
        "promoted": False,
        "reason": CANDIDATE_NOT_PROMOTED,
        "champion": first,
        "margin": 0.02,
        "n": 380,
        "candidate_top1": 0.77,
        "champion_top1": 0.8,
        "diff_top1": -0.03,
        "diff_top1_low": -0.055,
        "diff_top1_high": -0.005,
    }
    registry.write_report(newest, {"comparison": comparison, "test": {"coverage": _coverage(0.5)}})
    return first, newest


def test_report_reads_every_shown_versions_report_and_the_configured_review_threshold(tmp_path):
    """``hscode report``: the top box explains the unpromoted newest version from its own
    report.json (its comparison figures, not only the gate's one-line reason), and the
    review-rate table marks the configured threshold, not the settings' default."""
    from app.serve import _version_dicts, write_html_report
    from hscode.settings import Settings

    settings = Settings(data_dir=tmp_path / "var", review_threshold=0.35, _env_file=None)
    first, newest = _registry_with_an_unpromoted_newest_version(settings)

    champion, versions = _version_dicts(settings)
    assert [v["version"] for v in versions] == [newest, first]
    assert champion is versions[1] and champion["report"]["test"]["coverage"]
    assert versions[0]["report"]["comparison"]["n"] == 380  # not only the champion's

    page = write_html_report(settings, tmp_path / "report.html").read_text(encoding="utf-8")
    top = page[page.index("Latest training run") : page.index("<h2>Champion:")]
    assert f"{newest}:" in top and "Not promoted. On 380 test cases" in top
    assert "-3.0 points, 95% interval -5.5 to -0.5 points" in top
    assert "0.35 (the review threshold)" in page
    assert "0.5 (the review threshold)" not in page  # the default (0.5) is not marked

"""flows._common.training_due: when the nightly chain retrains."""

from __future__ import annotations

import datetime as dt

from flows._common import training_due
from hscode.registry import ModelVersion

NOW = dt.datetime(2027, 1, 5, tzinfo=dt.UTC)


def _champion(edition: str | None) -> ModelVersion:
    return ModelVersion(
        version="v0001",
        created_at=(NOW - dt.timedelta(days=1)).isoformat(),
        n_cases=1000,
        info={"tariff_edition": edition},
    )


def test_a_new_current_edition_makes_training_due() -> None:
    recent = training_due(_champion("hsk2026"), 1010, NOW, 200, 7, current_edition="hsk2026")
    assert not recent.due
    new = training_due(_champion("hsk2026"), 1010, NOW, 200, 7, current_edition="hsk2027")
    assert new.due and "hsk2027" in new.why and "hsk2026" in new.why
    never = training_due(_champion(None), 1010, NOW, 200, 7, current_edition="hsk2027")
    assert never.due and "decided codes" in never.why
    # without a current edition nothing changes: new cases and age decide
    assert not training_due(_champion(None), 1010, NOW, 200, 7).due
    assert training_due(_champion(None), 1300, NOW, 200, 7).due
    assert training_due(None, 0, NOW, 200, 7).why == "no champion yet"

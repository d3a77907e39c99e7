"""Shared test data: synthetic cases as case records, and the tiny training config.

Imported by name (``from synthetic_cases import ...``), like ``conftest_db``.
"""

from __future__ import annotations

from hscode.cases import make_case

# a few batches on CPU: the tests check the flow, not the accuracy
TINY_TRAIN = {
    "inputs": "title",
    "epochs": 3,
    "embed_dim": 16,
    "embed_epochs": 2,
    "hidden": 16,
    "batch_size": 16,
    "max_len": 12,
    "device": "cpu",
    "num_threads": 1,
}


def synthetic_records(
    n: int,
    seed: int = 0,
    prefix: str = "syn",
    decision_date: str | None = "2024-01-15",
) -> list[dict]:
    """``n`` synthetic cases (``model.synthetic``, no photos) as records for ``upsert_cases``."""
    from model.synthetic import make_cases

    return [
        make_case(
            case_key=f"{prefix}-{i}",
            source="import:test",
            title_raw=e.title,
            hs_raw=e.label,
            description_raw=e.description,
            decision_date=decision_date,
        )
        for i, e in enumerate(make_cases(n, seed=seed, with_images=0.0))
    ]

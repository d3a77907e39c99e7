"""Shared test data: the tiny training config (synthetic case records come from
``hscode.cases.synthetic_case_records``).

Imported by name (``from synthetic_cases import ...``), like ``conftest_db``.
"""

from __future__ import annotations

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

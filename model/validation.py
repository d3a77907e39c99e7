"""How a validation set is split between early stopping and calibration."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np


def calibration_split(
    labels: Sequence[str], share: float = 0.5, seed: int = 13
) -> tuple[np.ndarray, np.ndarray]:
    """(stop, calibration) row indices of a validation set, stratified by label.

    Rows are grouped by label (labels sorted, rows shuffled within a label with ``seed``) and
    every row whose running share crosses a multiple of ``share`` goes to calibration, so each
    label is split in proportion and labels with a single row alternate between the parts.
    With ``share == 0``, fewer than 4 rows or an empty part, both parts are all rows.
    """
    n = len(labels)
    every = np.arange(n)
    if share <= 0 or n < 4:
        return every, every
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    ordered: list[int] = []
    for lab in sorted(by_label):
        rows = by_label[lab]
        rng.shuffle(rows)
        ordered.extend(rows)
    cal = [i for j, i in enumerate(ordered) if math.floor((j + 1) * share) > math.floor(j * share)]
    stop = sorted(set(ordered) - set(cal))
    if not cal or not stop:
        return every, every
    return np.array(stop, dtype=np.int64), np.array(sorted(cal), dtype=np.int64)

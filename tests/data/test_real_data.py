"""Expectations on the real data in ../shared/data, through the product's own readers.

These tests guard what the models and reports assume about the rulings, the names and the
tariff; they skip cleanly when the data is not beside the checkout (the ``shared_data``
fixture). Each states a property of the data, measured once when it was written.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from emulator.corpus import kcs_corpus
from hscode.case_records import CaseRejected, make_case
from hscode.cases import upsert_cases
from hscode.code_status import CodeStatus, CurrentTariff, code_statuses
from hscode.hs import parse_hs
from hscode.selection import load_examples
from hscode.training import TrainConfig


@pytest.fixture
def kcs(shared_data: Path):
    return list(kcs_corpus(shared_data / "kcs_hs_chatbot"))


def test_ruling_reference_numbers_are_unique_per_series(kcs) -> None:
    keys = Counter((c.series, c.reference_no) for c in kcs)
    assert len(kcs) >= 950  # 982 rulings in the snapshot, a few skipped for missing fields
    assert max(keys.values()) == 1


def test_ruling_codes_parse_to_ten_digits_or_are_flagged(kcs) -> None:
    parsed = [parse_hs(c.hs_code) for c in kcs]
    single = [p for p in parsed if p.hs10 is not None]
    assert len(single) >= 0.95 * len(parsed)
    assert all(re.fullmatch(r"\d{10}", p.hs10) for p in single)
    assert all(p.hs6 == p.hs10[:6] and p.hs4 == p.hs10[:4] for p in single)
    # a value naming several codes is never forced onto one of them
    assert all(p.hs10 is None for p in parsed if p.multi)


def test_the_decision_reason_states_the_answer_and_never_reaches_a_model(kcs, settings) -> None:
    """The reason (결정사유) names the decided code: fed to a model it would leak the label.
    Cases keep it for reports; the examples the models train on never contain it."""
    states_code = [
        c
        for c in kcs
        if parse_hs(c.hs_code).hs4 and parse_hs(c.hs_code).hs4 in c.reason.replace(".", "")
    ]
    assert len(states_code) >= 0.5 * len(kcs)
    records, refused = [], Counter()
    for c in kcs:
        try:
            records.append(
                make_case(
                    case_key=f"kcs-{c.series}-{c.reference_no}",
                    source="kcs",
                    series=c.series,
                    reference_no=c.reference_no,
                    decision_date=c.decision_date,
                    title_raw=c.title,
                    description_raw=c.description,
                    decision_reason=c.reason,
                    hs_raw=c.hs_code,
                )
            )
        except CaseRejected as exc:  # e.g. a ruling published without a product name
            refused[str(exc.reason)] += 1
    assert sum(refused.values()) <= 0.02 * len(kcs)
    upsert_cases(settings, records)
    selection = load_examples(settings, TrainConfig(min_cases_per_code=2, level="hs4"))
    assert len(selection.examples) >= 0.5 * len(records)
    reasons = {r["case_key"]: r["decision_reason"] for r in records}
    for example in selection.examples:
        reason = reasons[example.key]
        for text in (example.title, example.description or ""):
            assert reason not in text


def test_name_dataset_codes_and_label_noise(shared_data: Path) -> None:
    with (shared_data / "ghko99_hscode" / "dataset.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 34_114
    codes = [r["hscode"].strip().zfill(10) for r in rows]  # chapters 01-09 lost a zero
    assert all(re.fullmatch(r"\d{10}", c) for c in codes)
    assert all(r["name"].strip() for r in rows)
    # the same name with different codes: real label noise, a few percent of the names
    by_name: dict[str, set[str]] = {}
    for r, code in zip(rows, codes, strict=True):
        by_name.setdefault(" ".join(r["name"].lower().split()), set()).add(code)
    noisy = sum(len(v) > 1 for v in by_name.values()) / len(by_name)
    assert 0.005 < noisy < 0.10


def test_current_tariff_has_unique_ten_digit_codes(shared_data: Path) -> None:
    path = shared_data / "arang0105_hskcodechecker" / "hsk_codes.csv"
    with path.open(encoding="utf-8-sig") as f:
        codes = [r["hs10"] for r in csv.DictReader(f)]
    assert len(codes) == len(set(codes)) == 11_327
    assert all(re.fullmatch(r"\d{10}", c) for c in codes)


def test_old_name_codes_against_the_current_tariff(shared_data: Path) -> None:
    """docs/data.md: 300 of the 3,973 ghko99 codes (1,990 names) are not current ten-digit
    codes, 39 of them not even in a current subheading; most were split."""
    tariff = CurrentTariff.from_files(
        "hsk-2026",
        shared_data / "arang0105_hskcodechecker" / "hsk_codes.csv",
        shared_data / "hs_correlations" / "hs2022_correlations.csv",
    )
    with (shared_data / "ghko99_hscode" / "dataset.csv").open(encoding="utf-8") as f:
        names = [r["hscode"].strip().zfill(10) for r in csv.DictReader(f)]
    by_code = dict(zip(sorted(set(names)), code_statuses(sorted(set(names)), tariff), strict=True))
    statuses = Counter(r.status for r in by_code.values())
    assert len(by_code) == 3_973
    assert sum(n for s, n in statuses.items() if s != CodeStatus.CURRENT) == 300
    assert statuses[CodeStatus.MOVED] + statuses[CodeStatus.UNKNOWN] == 39
    assert statuses[CodeStatus.SPLIT] > statuses[CodeStatus.MOVED]
    assert sum(by_code[c].status != CodeStatus.CURRENT for c in names) == 1_990
    assert by_code["2106909090"].candidates == ("2106909091", "2106909099")
    # every candidate of every case is a current code
    assert all(set(r.candidates) <= tariff.codes for r in by_code.values())

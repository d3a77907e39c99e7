"""hscode.code_status and the stored statuses of the cases dataset."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hscode.case_records import make_case
from hscode.cases import read_cases, restatus_cases, upsert_cases
from hscode.code_status import CodeStatus, CurrentTariff, code_status, code_statuses

CURRENT = [
    "2106909091",
    "2106909099",  # 2106909090 was split into these two
    "8517130000",
    "8471300000",
    "3304991000",  # 3304990000 became this one alone
    "8549110000",  # a subheading created later (HS2022)
    "8549120000",
]
# older subheading 854890 went to 8549 (a made-up pair, for the moved rule)
PAIRS = [("854911", "854890"), ("854912", "854890"), ("851713", "851713")]


@pytest.fixture
def tariff() -> CurrentTariff:
    return CurrentTariff.from_correlations("hsk-2026", CURRENT, PAIRS)


def test_each_status_with_its_candidates(tariff: CurrentTariff) -> None:
    assert code_status("8517130000", tariff).status == CodeStatus.CURRENT
    assert code_status("8517130000", tariff).candidates == ("8517130000",)
    split = code_status("2106909090", tariff)
    assert split.status == CodeStatus.SPLIT and split.via == "210690909"
    assert split.candidates == ("2106909091", "2106909099")
    remapped = code_status("3304990000", tariff)
    assert remapped.status == CodeStatus.REMAPPED and remapped.candidates == ("3304991000",)
    moved = code_status("8548900000", tariff)
    assert moved.status == CodeStatus.MOVED and moved.via == "correlation:854890"
    assert moved.candidates == ("8549110000", "8549120000")
    for code in ("9999999999", None, "", "85171", "abcdefghij"):
        unknown = code_status(code, tariff)
        assert unknown.status == CodeStatus.UNKNOWN and unknown.candidates == ()


def test_a_prefix_shorter_than_the_subheading_is_not_a_split(tariff: CurrentTariff) -> None:
    # 8471 survives at four digits only through another subheading: not a valid label set
    assert code_status("8471410000", tariff).status == CodeStatus.UNKNOWN


def test_many_codes_are_derived_once_each(tariff: CurrentTariff) -> None:
    codes = ["2106909090", "8517130000"] * 5
    results = code_statuses(codes, tariff)
    assert [r.status for r in results[:2]] == [CodeStatus.SPLIT, CodeStatus.CURRENT]
    assert results[0] is results[2]  # memoised
    with pytest.raises(ValueError, match="ten digits"):
        CurrentTariff("x", frozenset({"85171300"}))


def _case(key: str, code: str, title: str = "product") -> dict:
    return make_case(
        case_key=key, source="import:test", title_raw=title, hs_raw=code, decision_date="2024-03-01"
    )


def test_statuses_are_stored_with_the_cases_and_re_derived_only_when_needed(
    settings, tariff: CurrentTariff
) -> None:
    upsert_cases(settings, [_case("a", "8517130000"), _case("b", "2106909090")])
    assert set(read_cases(settings)["code_status"].to_pylist()) == {None}  # not derived yet
    first = restatus_cases(settings, tariff)
    assert first.derived == 2 and first.by_status == {"current": 1, "split": 1}
    rows = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    assert rows["b"]["code_status"] == "split"
    assert rows["b"]["code_candidates"] == ["2106909091", "2106909099"]
    assert rows["a"]["code_edition"] == "hsk-2026"
    # nothing changed: nothing is written
    assert restatus_cases(settings, tariff).derived == 0
    # a re-fetch with the same code keeps the status; a changed code needs a new one
    report = upsert_cases(settings, [_case("a", "8517130000", "phone"), _case("b", "8471300000")])
    assert report.updated == 2
    rows = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    assert rows["a"]["code_status"] == "current" and rows["b"]["code_status"] is None
    assert restatus_cases(settings, tariff).derived == 1
    # a new current edition re-derives every case
    newer = CurrentTariff("hsk-2027", frozenset({"8517130000", "8471300001"}))
    again = restatus_cases(settings, newer)
    assert again.derived == 2 and again.by_status == {"current": 1, "remapped": 1}


def test_a_dataset_of_the_older_schema_is_migrated(settings, tariff: CurrentTariff) -> None:
    upsert_cases(settings, [_case("a", "8517130000")])
    (path,) = settings.data_dir.rglob("part-0.parquet")  # files of schema 1 lack the columns
    old = pq.read_table(path)
    old = old.drop_columns(["code_status", "code_candidates", "code_edition"])
    version = pa.array([1] * old.num_rows, pa.int32())
    old = old.set_column(old.schema.get_field_index("schema_version"), "schema_version", version)
    pq.write_table(old, path)
    row = read_cases(settings).to_pylist()[0]
    assert row["schema_version"] == 1 and row["code_status"] is None  # read as null
    assert restatus_cases(settings, tariff).derived == 1
    row = read_cases(settings).to_pylist()[0]
    assert row["schema_version"] == 2 and row["code_status"] == "current"


def test_training_selection_uses_current_successors_and_reports_old_codes(
    settings, tariff: CurrentTariff
) -> None:
    from hscode.selection import load_examples
    from hscode.training import TrainConfig

    cases = [_case(f"r{i}", "3304990000", "립스틱") for i in range(3)]  # remapped
    cases += [_case(f"s{i}", "2106909090", "건강식품") for i in range(4)]  # split
    cases += [_case(f"c{i}", "8517130000", "휴대폰") for i in range(3)]  # current
    upsert_cases(settings, cases)
    before = load_examples(settings, TrainConfig(inputs="title", min_cases_per_code=2))
    assert before.code_status == {"not derived": 10}
    restatus_cases(settings, tariff)
    selection = load_examples(settings, TrainConfig(inputs="title", min_cases_per_code=2))
    labels = {e.key: e.label for e in selection.examples}
    assert labels["r0"] == "3304991000"  # trained as its one current successor
    split = next(e for e in selection.examples if e.key == "s0")
    assert split.candidates == ("2106909091", "2106909099")  # a partial label: either is right
    assert split.label == "2106909090" and split.accepted == split.candidates
    hs6 = load_examples(settings, TrainConfig(inputs="title", min_cases_per_code=2, level="hs6"))
    at6 = next(e for e in hs6.examples if e.key == "s0")
    assert at6.label == "210690" and at6.candidates == ()  # one current code at six digits
    assert selection.code_status == {"remapped": 3, "split": 4, "current": 3}
    assert selection.largest_not_current[0] == {
        "hs10": "2106909090",
        "status": "split",
        "candidates": 2,
        "cases": 4,
    }

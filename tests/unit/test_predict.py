"""``predict_file``: requests file in, ranked codes out, bad rows set aside with their reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.cli_common import EXIT_BAD_INPUT
from hscode import request_rows
from hscode.case_records import synthetic_case_records
from hscode.cases import upsert_cases
from hscode.predict import PredictInputError, predict_file, rejects_path
from hscode.registry import RegistryError
from hscode.request_rows import IntakeFileError
from hscode.settings import Settings
from hscode.training import TrainConfig, train_and_register


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("predict") / "var", _env_file=None)
    records = synthetic_case_records(120, seed=5, prefix="p", decision_date=None)
    upsert_cases(settings, records)
    train_and_register(
        settings,
        TrainConfig(
            inputs="title+description",
            epochs=6,
            embed_dim=16,
            embed_epochs=3,
            hidden=24,
            batch_size=16,
            device="cpu",
            num_threads=1,
        ),
    )
    return settings


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_round_trip_with_bad_rows(trained: Settings, tmp_path: Path) -> None:
    from model.synthetic import draw_product

    (tmp_path / "phone.jpg").write_bytes(draw_product("slab", __import__("random").Random(1)))
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    rows = [
        {
            "request_id": "r1",
            "title": "삼성 스마트폰 SM-G991N",
            "description": "",
            "image_path": "",
        },
        {
            "request_id": "r2",
            "title": "leather shoes 구두 AB-1234",
            "description": "footwear with leather uppers and rubber soles",
            "image_path": "phone.jpg",
        },
        {"request_id": "", "title": "no id", "description": "", "image_path": ""},
        {"request_id": "r3", "title": "   ", "description": "", "image_path": ""},
        {"request_id": "r1", "title": "duplicate id", "description": "", "image_path": ""},
        {"request_id": "r4", "title": "monitor", "description": "", "image_path": "missing.jpg"},
        {"request_id": "r5", "title": "watch", "description": "", "image_path": "broken.jpg"},
        {
            "request_id": "r6",
            "title": "x" * (trained.max_text_chars + 1),
            "description": "",
            "image_path": "",
        },
        {"request_id": "r7", "title": "travel backpack 백팩", "description": "", "image_path": ""},
    ]
    src = tmp_path / "requests.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out" / "predictions.csv"
    out.parent.mkdir()

    summary = predict_file(trained, src, out, top_k=3)
    assert summary["rows"] == 9 and summary["predicted"] == 3 and summary["rejected"] == 6
    assert summary["model_version"].startswith("v0001-")

    got = _read_csv(out)
    assert list(got[0]) == ["request_id", "rank", "hs_code", "score", "review", "tariff_edition"]
    by_id: dict[str, list[dict[str, str]]] = {}
    for row in got:
        by_id.setdefault(row["request_id"], []).append(row)
    assert sorted(by_id) == ["r1", "r2", "r7"]
    for preds in by_id.values():
        assert [int(p["rank"]) for p in preds] == [1, 2, 3]
        scores = [float(p["score"]) for p in preds]
        assert scores == sorted(scores, reverse=True) and 0.0 < scores[0] <= 1.0
        assert all(len(p["hs_code"]) == 10 and p["hs_code"].isdigit() for p in preds)
        assert {p["review"] for p in preds} <= {"true", "false"}
    assert by_id["r7"][0]["hs_code"] == "4202920000"  # backpack: learnt from the product word

    # line = data row number (header not counted); reasons are the intake's
    rejected = _read_csv(rejects_path(out))
    assert list(rejected[0]) == ["line", "request_id", "reason", "reason_code"]
    reasons = {(r["line"], r["request_id"]): r["reason"] for r in rejected}
    codes = {(r["line"], r["request_id"]): r["reason_code"] for r in rejected}
    assert codes == {
        ("3", ""): "empty_key",
        ("4", "r3"): "empty_title",
        ("5", "r1"): "duplicate",
        ("6", "r4"): "image_missing",
        ("7", "r5"): "image_corrupt",
        ("8", "r6"): "oversize_text",
    }
    assert len(reasons) == 6
    assert reasons[("3", "")] == "missing request_id"
    assert reasons[("4", "r3")] == "empty title"
    assert reasons[("5", "r1")] == "duplicate request_id 'r1'"
    assert (
        reasons[("6", "r4")].startswith("unreadable image:") and "not found" in reasons[("6", "r4")]
    )
    assert reasons[("7", "r5")].startswith("unreadable image:")
    assert reasons[("8", "r6")].startswith("text too long (")

    # a clean re-run replaces the output and removes the stale rejects file
    clean = tmp_path / "clean.csv"
    with open(clean, "w", newline="", encoding="utf-8") as fh:
        fh.write("request_id,title\nq1,smartphone\n")
    assert predict_file(trained, clean, out, top_k=1)["rejected"] == 0
    assert len(_read_csv(out)) == 1 and not rejects_path(out).exists()


def test_an_oversize_csv_field_rejects_its_row_only(trained: Settings, tmp_path: Path) -> None:
    # one 200,000-character title: beyond the csv module's 131,072-character field limit
    src = tmp_path / "big.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request_id", "title", "description"])
        writer.writerow(["g1", "wrist watch casio", ""])
        writer.writerow(["huge", "x" * 200_000, ""])
        writer.writerow(["g2", "LCD monitor", "flat panel\nwith a stand"])
    out = tmp_path / "pred.csv"
    summary = predict_file(trained, src, out, top_k=2)
    assert (summary["rows"], summary["predicted"], summary["rejected"]) == (3, 2, 1)
    assert sorted({row["request_id"] for row in _read_csv(out)}) == ["g1", "g2"]
    (reject,) = _read_csv(rejects_path(out))
    assert (reject["line"], reject["request_id"]) == ("2", "huge")  # the second data row
    assert reject["reason"] == f"text too long (200000 chars > {trained.max_text_chars})"


def test_jsonl_and_parquet(trained: Settings, tmp_path: Path) -> None:
    src = tmp_path / "requests.jsonl"
    src.write_text(
        json.dumps({"request_id": "a", "title": "wrist watch casio"})
        + "\n"
        + "{broken json\n"
        + json.dumps({"request_id": "b", "title": "LCD monitor", "description": "flat panel"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "pred.parquet"
    summary = predict_file(trained, src, out, top_k=2)
    assert (summary["predicted"], summary["rejected"]) == (2, 1)
    table = pq.read_table(out)
    assert table.column_names == [
        "request_id",
        "rank",
        "hs_code",
        "score",
        "review",
        "tariff_edition",
    ]
    assert table.num_rows == 4
    (reject,) = _read_csv(rejects_path(out))
    assert (reject["line"], reject["request_id"]) == ("2", "")
    assert reject["reason"].startswith("line 2: invalid JSON (")

    pq_in = tmp_path / "requests.parquet"
    pq.write_table(pa.table({"request_id": ["p1"], "title": ["smartphone"]}), pq_in)
    assert predict_file(trained, pq_in, tmp_path / "p.csv", top_k=5)["predicted"] == 1


def test_whole_file_errors(trained: Settings, tmp_path: Path, settings: Settings) -> None:
    bad = tmp_path / "r.csv"
    bad.write_text("ref,product\n1,x\n", encoding="utf-8")
    with pytest.raises(PredictInputError, match="r.csv: no request_id column") as info:
        predict_file(trained, bad, tmp_path / "o.csv", top_k=3)
    assert isinstance(info.value.__cause__, IntakeFileError)
    no_title = tmp_path / "t.jsonl"
    no_title.write_text(json.dumps({"request_id": "a", "product": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(PredictInputError, match="t.jsonl: no title column"):
        predict_file(trained, no_title, tmp_path / "o.csv", top_k=3)
    latin1 = tmp_path / "l.csv"
    latin1.write_bytes("request_id,title\n1,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(PredictInputError, match="l.csv: not UTF-8 text"):
        predict_file(trained, latin1, tmp_path / "o.csv", top_k=3)
    not_parquet = tmp_path / "n.parquet"
    not_parquet.write_bytes(b"request_id,title\n1,x\n")
    with pytest.raises(PredictInputError, match="n.parquet: unreadable Parquet"):
        predict_file(trained, not_parquet, tmp_path / "o.csv", top_k=3)
    assert not (tmp_path / "o.csv").exists()  # nothing written for a file that fails whole
    with pytest.raises(PredictInputError, match="unsupported file type .xlsx"):
        predict_file(trained, bad.rename(tmp_path / "r.xlsx"), tmp_path / "o.csv", top_k=3)
    with pytest.raises(PredictInputError, match="unsupported output format"):
        predict_file(trained, tmp_path / "r.xlsx", tmp_path / "o.txt", top_k=3)
    ok = tmp_path / "ok.csv"
    ok.write_text("request_id,title\n1,x\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="no champion"):
        predict_file(settings, ok, tmp_path / "o.csv", top_k=3)  # an empty data dir


def test_cli_reports_a_bad_file_and_exits_non_zero(
    trained: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "r.csv"
    bad.write_text("ref,product\n1,x\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    argv = ["--data-dir", str(trained.data_dir), "predict", "--input", str(bad)]
    assert main([*argv, "--output", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("hscode predict: r.csv: no request_id column (accepted: ")
    assert not out.exists()


def test_a_file_is_judged_as_the_intake_judges_it(trained: Settings, tmp_path: Path) -> None:
    """Aliased columns, ``image_base64`` and a JSON line that is not an object: predict keeps
    and rejects exactly the rows the intake's validation keeps and rejects, with its reasons."""
    import base64
    import random

    from model.synthetic import draw_product

    image = draw_product("slab", random.Random(2))
    id_col = request_rows.COLUMN_ALIASES["request_id"][1]  # "id"
    title_col = request_rows.COLUMN_ALIASES["title"][2]  # "product_name"
    desc_col = request_rows.COLUMN_ALIASES["description"][1]  # "desc"
    b64_col = request_rows.COLUMN_ALIASES["image_base64"][0]
    lines = [
        {id_col: "a1", title_col: "wrist watch casio", desc_col: "quartz"},
        [1, 2, 3],  # valid JSON, not an object
        {id_col: "a2", title_col: "smartphone", b64_col: base64.b64encode(image).decode()},
        {id_col: "a3", title_col: "monitor", b64_col: "%%% not base64"},
        {id_col: "a1", title_col: "duplicate of the first"},
        {id_col: "a4", title_col: ""},
    ]
    src = tmp_path / "aliased.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")

    expected_rejects: dict[str, tuple[str, str]] = {}
    expected_ok: list[str] = []
    for n, row in enumerate(request_rows.read_request_file(src), start=1):
        checked = request_rows.validate_request_row(
            row, src.parent, trained.max_text_chars, trained.max_image_bytes
        )
        if hasattr(checked, "reason"):
            expected_rejects[str(n)] = (checked.key or "", checked.message)
        elif checked.request_id in expected_ok:
            expected_rejects[str(n)] = (
                checked.request_id,
                f"duplicate request_id {checked.request_id!r}",
            )
        else:
            expected_ok.append(checked.request_id)
    assert expected_ok == ["a1", "a2"] and sorted(expected_rejects) == ["2", "4", "5", "6"]
    assert expected_rejects["2"] == ("", "line 2: not a JSON object")

    out = tmp_path / "pred.csv"
    summary = predict_file(trained, src, out, top_k=2)
    assert (summary["rows"], summary["predicted"], summary["rejected"]) == (6, 2, 4)
    got = _read_csv(out)
    assert [(r["request_id"], r["rank"]) for r in got] == [
        ("a1", "1"),
        ("a1", "2"),
        ("a2", "1"),
        ("a2", "2"),
    ]
    rejected = {r["line"]: (r["request_id"], r["reason"]) for r in _read_csv(rejects_path(out))}
    assert rejected == expected_rejects
    assert rejected["4"][1].startswith("unreadable image: bad base64")
    assert rejected["6"] == ("a4", "empty title")


def test_roll_up_sums_a_heading_spread_over_its_subheadings() -> None:
    from hscode.recommend import roll_up
    from model.records import Candidate

    ranked = [
        Candidate("0203291000", 0.40),  # the best ten-digit code is pork ...
        Candidate("0202300000", 0.35),
        Candidate("0202200000", 0.25),  # ... but beef (0202) holds more of the probability
    ]
    assert [(c.hs10, round(c.score, 6)) for c in roll_up(ranked, 4)] == [
        ("0202", 0.6),
        ("0203", 0.4),
    ]
    assert [c.hs10 for c in roll_up(ranked, 2)] == ["02"]
    assert roll_up(ranked, 10) == ranked
    with pytest.raises(ValueError, match="digits must be one of"):
        roll_up(ranked, 5)


def test_predict_at_four_digits_ranks_headings_by_their_summed_probability(
    trained: Settings, tmp_path: Path
) -> None:
    """``hscode predict --digits 4``: heading codes, each scored by the summed probability of
    its ten-digit codes in the ten-digit answer, best first; the review flag is the ten-digit
    answer's."""
    requests = tmp_path / "r.csv"
    with open(requests, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request_id", "title"])
        for i, title in enumerate(["스마트폰 SM-G991N", "냉동 돼지고기", "면 티셔츠", "부품"]):
            writer.writerow([f"r{i}", title])
    full, heads = tmp_path / "full.csv", tmp_path / "heads.csv"
    base = ["--data-dir", str(trained.data_dir), "predict", "--input", str(requests)]
    assert main([*base, "--output", str(full), "--top-k", "50"]) == 0
    assert main([*base, "--output", str(heads), "--top-k", "3", "--digits", "4"]) == 0
    ten, four = _read_csv(full), _read_csv(heads)
    for rid in ("r0", "r1", "r2", "r3"):
        mass: dict[str, float] = {}
        for row in (r for r in ten if r["request_id"] == rid):
            mass[row["hs_code"][:4]] = mass.get(row["hs_code"][:4], 0.0) + float(row["score"])
        got = [r for r in four if r["request_id"] == rid]
        assert [r["rank"] for r in got] == [str(i) for i in range(1, len(got) + 1)]
        assert 1 <= len(got) <= 3 and all(len(r["hs_code"]) == 4 for r in got)
        best = sorted(mass.values(), reverse=True)[: len(got)]
        assert [float(r["score"]) for r in got] == pytest.approx(best, abs=1e-5)
        flags = {r["review"] for r in ten if r["request_id"] == rid}
        assert {r["review"] for r in got} == flags


def test_scoring_and_predict_run_with_the_configured_torch_threads(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``score_threads`` (HSCODE_SCORE_THREADS) holds while the model ranks, and torch's own
    setting is back afterwards."""
    import torch

    from hscode import predict, scoring
    from model.records import RequestInput

    seen: list[int] = []

    def spy(module):
        real = module.recommend

        def recommend(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "recommend", recommend)

    spy(predict)
    spy(scoring)
    before = torch.get_num_threads()
    wanted = before + 1  # not torch's default, so the test cannot pass by chance
    one = trained.model_copy(update={"score_threads": wanted})
    requests = tmp_path / "r.csv"
    requests.write_text("request_id,title\nr1,냉동 돼지고기\n", encoding="utf-8")
    predict_file(one, requests, tmp_path / "o.csv")
    from hscode.registry import Registry

    model = Registry.from_settings(one).load(Registry.from_settings(one).champion().version)
    recs, bad = scoring._recommend(model, [RequestInput("s1", "면 티셔츠")], one)
    assert len(recs) == 1 and not bad
    assert seen == [wanted, wanted]
    assert torch.get_num_threads() == before

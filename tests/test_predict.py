"""``predict_file``: requests file in, ranked codes out, bad rows set aside with their reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic_cases import synthetic_records

from hscode.cases import upsert_cases
from hscode.predict import PredictInputError, predict_file, rejects_path
from hscode.registry import RegistryError
from hscode.settings import Settings
from hscode.training import TrainConfig, train_and_register


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("predict") / "var", _env_file=None)
    records = synthetic_records(120, seed=5, prefix="p", decision_date=None)
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
    assert list(got[0]) == ["request_id", "rank", "hs_code", "score", "review"]
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

    rejected = _read_csv(rejects_path(out))
    reasons = {(r["line"], r["request_id"]): r["reason"] for r in rejected}
    assert "request_id is empty" in reasons[("4", "")]
    assert "title is empty" in reasons[("5", "r3")]
    assert "duplicate request_id" in reasons[("6", "r1")]
    assert "not found" in reasons[("7", "r4")]
    assert "not a readable image" in reasons[("8", "r5")]
    assert "characters (limit" in reasons[("9", "r6")]

    # a clean re-run replaces the output and removes the stale rejects file
    clean = tmp_path / "clean.csv"
    with open(clean, "w", newline="", encoding="utf-8") as fh:
        fh.write("request_id,title\nq1,smartphone\n")
    assert predict_file(trained, clean, out, top_k=1)["rejected"] == 0
    assert len(_read_csv(out)) == 1 and not rejects_path(out).exists()


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
    assert table.column_names == ["request_id", "rank", "hs_code", "score", "review"]
    assert table.num_rows == 4
    assert "not valid JSON" in _read_csv(rejects_path(out))[0]["reason"]

    pq_in = tmp_path / "requests.parquet"
    pq.write_table(pa.table({"request_id": ["p1"], "title": ["smartphone"]}), pq_in)
    assert predict_file(trained, pq_in, tmp_path / "p.csv", top_k=5)["predicted"] == 1


def test_whole_file_errors(trained: Settings, tmp_path: Path, settings: Settings) -> None:
    bad = tmp_path / "r.csv"
    bad.write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(PredictInputError, match="missing column"):
        predict_file(trained, bad, tmp_path / "o.csv", top_k=3)
    with pytest.raises(PredictInputError, match="unsupported input format"):
        predict_file(trained, bad.rename(tmp_path / "r.xlsx"), tmp_path / "o.csv", top_k=3)
    with pytest.raises(PredictInputError, match="unsupported output format"):
        predict_file(trained, tmp_path / "r.xlsx", tmp_path / "o.txt", top_k=3)
    ok = tmp_path / "ok.csv"
    ok.write_text("request_id,title\n1,x\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="no champion"):
        predict_file(settings, ok, tmp_path / "o.csv", top_k=3)  # an empty data dir

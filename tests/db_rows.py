"""Rows written by hand for tests of the SQL views and their readers."""

from __future__ import annotations


def insert_scored(engine, version: str, ranked: dict, champion: bool = False) -> None:
    """A model version and its predictions, written by hand: request -> [(hs10, score,
    review) by rank] (for tests of the views and readers over ``predictions``)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text("insert into model_versions (version, champion) values (:v, :c)"),
            {"v": version, "c": champion},
        )
        conn.execute(
            text(
                "insert into predictions (request_id, model_version, rank, hs10, hs6, hs4, hs2,"
                " score, review) values (:r, :v, :k, :c, left(:c, 6), left(:c, 4), left(:c, 2),"
                " :s, :review)"
            ),
            [
                {"r": rid, "v": version, "k": k, "c": code, "s": score, "review": review}
                for rid, codes in ranked.items()
                for k, (code, score, review) in enumerate(codes, start=1)
            ],
        )


def empty_tables(engine) -> None:
    """Requests, decisions, predictions, model versions and the tariff, all emptied."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "truncate decisions, predictions, precedents, requests, intake_rejects, "
                "score_runs, model_versions, tariff, tariff_editions cascade"
            )
        )

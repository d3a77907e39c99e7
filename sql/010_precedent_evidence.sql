-- Evidence a reviewer can use, and drift per scoring run.
--
-- Precedents carry their ruling's evidence, from the model's precedent index (recorded at
-- training from the cases dataset; null for models trained before it): the reference
-- number, the decision date, the portal series, the decision reason shortened (its first
-- 300 characters, cut at a word, with an ellipsis: hscode.evidence.shorten), where the case
-- came from, and a link to the ruling on the portal (cases from the portal only; null for
-- imports and reviewers' decisions).
alter table precedents
    add column reference_no   text,
    add column decision_date  date,
    add column series         text,
    add column reason_excerpt text,
    add column case_source    text,
    add column ruling_url     text;

-- Drift per scoring run (hscode.scoring), kept up to date batch by batch in the batch's own
-- transaction (a killed run's figures describe what it wrote):
--   reviewed            scored requests flagged for review
--   confidence_sum      the sum of their rank-1 confidence (after the tariff check)
--   request_tokens      tokens of the scored requests' title (and description when the model
--                       reads descriptions), as the model's tokenizer cuts them
--   unseen_tokens       of them, tokens not in the model's training vocabulary
--   mean_confidence     confidence_sum / scored
--   review_rate         reviewed / scored
--   unseen_token_share  unseen_tokens / request_tokens (null: the model reports no tokens)
-- and the model version's test figures they are compared with, copied from
-- model_versions.metrics when the run starts (null when the version has none: trained
-- before hscode.training recorded them, or not synced from the registry):
--   test_mean_confidence, test_review_rate, test_unseen_token_share
-- Runs before this migration have them all null.
alter table score_runs
    add column reviewed                integer,
    add column confidence_sum          double precision,
    add column request_tokens          bigint,
    add column unseen_tokens           bigint,
    add column mean_confidence         double precision,
    add column review_rate             double precision,
    add column unseen_token_share      double precision,
    add column test_mean_confidence    double precision,
    add column test_review_rate        double precision,
    add column test_unseen_token_share double precision;

-- As in 007, with the evidence appended.
create or replace view latest_precedents as
select pr.request_id, pr.rank, pr.case_key, pr.hs10, pr.title as case_title, pr.similarity,
       pr.model_version, pr.run_id,
       hs_display(pr.hs10) as hs10_display,
       case when exists (select 1 from tariff_editions e where e.is_current)
            then coalesce(t.is_current, false) end as is_current,
       pr.reference_no,
       pr.decision_date,
       pr.series,
       pr.reason_excerpt,
       pr.case_source,
       pr.ruling_url
  from precedents pr
  join current_champion c on pr.model_version = c.version
  left join tariff t on t.code = pr.hs10;

-- As in 002, with the run's slice and tariff edition (003, 008) and the drift figures
-- appended, each beside the champion's test figure it is compared with.
create or replace view score_run_history as
select run_id, model_version, flow_run_id, started_at, finished_at, status, pending_at_start,
       scored, rejected, batches, seconds, model_seconds, db_seconds, error,
       partition_label,
       tariff_edition,
       mean_confidence,
       test_mean_confidence,
       review_rate,
       test_review_rate,
       unseen_token_share,
       test_unseen_token_share,
       reviewed,
       request_tokens,
       unseen_tokens
  from score_runs;

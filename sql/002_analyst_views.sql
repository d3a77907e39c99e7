-- Analyst views and the read-only analyst role.
--
-- "Champion" for the views: the model_versions row flagged champion, else the model version
-- of the most recent scoring run that scored something.

create view current_champion as
select coalesce(
    (select version from model_versions where champion),
    (select model_version from score_runs
      where scored > 0
      order by coalesce(finished_at, started_at) desc, run_id desc
      limit 1)
) as version;

-- The champion's top-k codes per request, with 10/6/4-digit codes and their tariff names.
create view latest_predictions as
select p.request_id,
       p.rank,
       p.hs10,
       p.hs6,
       p.hs4,
       p.hs2,
       p.score,
       p.review,
       p.review_reason,
       p.model_version,
       p.run_id,
       p.flow_run_id,
       p.scored_at,
       r.title,
       r.received_at,
       t10.name_ko as hs10_name_ko,
       t10.name_en as hs10_name_en,
       t6.name_ko  as hs6_name_ko,
       t6.name_en  as hs6_name_en,
       t4.name_ko  as hs4_name_ko,
       t4.name_en  as hs4_name_en
  from predictions p
  join current_champion c on p.model_version = c.version
  join requests r on r.request_id = p.request_id
  left join tariff t10 on t10.code = p.hs10
  left join tariff t6 on t6.code = p.hs6
  left join tariff t4 on t4.code = p.hs4;

-- The champion's precedents (most similar past cases) per request.
create view latest_precedents as
select pr.request_id, pr.rank, pr.case_key, pr.hs10, pr.title as case_title, pr.similarity,
       pr.model_version, pr.run_id
  from precedents pr
  join current_champion c on pr.model_version = c.version;

-- Requests a human should decide: low confidence or conflicting precedents (the model's
-- review flag and reason), with the candidate codes and the precedents' codes side by side.
create view review_queue as
select lp.request_id,
       lp.received_at,
       lp.title,
       lp.model_version,
       lp.run_id,
       lp.hs10          as top_hs10,
       lp.hs10_name_ko  as top_hs10_name_ko,
       lp.hs4_name_ko   as top_hs4_name_ko,
       lp.score         as confidence,
       lp.review_reason,
       (select array_agg(p2.hs10 order by p2.rank) from predictions p2
         where p2.request_id = lp.request_id and p2.model_version = lp.model_version)
           as candidates,
       (select array_agg(pr.hs10 order by pr.rank) from precedents pr
         where pr.request_id = lp.request_id and pr.model_version = lp.model_version)
           as precedent_codes,
       coalesce((select count(distinct pr.hs10) > 1 from precedents pr
         where pr.request_id = lp.request_id and pr.model_version = lp.model_version), false)
           as conflicting_precedents
  from latest_predictions lp
 where lp.rank = 1 and lp.review;

-- Every model version with its evaluation metrics and what it did in production.
create view model_leaderboard as
select mv.version,
       mv.champion,
       mv.registered_at,
       mv.promoted_at,
       coalesce(
           case when jsonb_typeof(mv.metrics -> 'test_top1') = 'number'
                then (mv.metrics ->> 'test_top1')::double precision end,
           case when jsonb_typeof(mv.metrics -> 'top1') = 'number'
                then (mv.metrics ->> 'top1')::double precision end,
           case when jsonb_typeof(mv.metrics -> 'test' -> 'top1') = 'number'
                then (mv.metrics -> 'test' ->> 'top1')::double precision end
       ) as top1,
       mv.metrics,
       coalesce(s.requests_scored, 0) as requests_scored,
       s.review_rate,
       s.mean_confidence,
       s.last_scored_at,
       coalesce(r.runs, 0) as runs,
       r.last_run_at
  from model_versions mv
  left join (
        select model_version,
               count(*) as requests_scored,
               avg(review::int)::double precision as review_rate,
               avg(score)::double precision as mean_confidence,
               max(scored_at) as last_scored_at
          from predictions
         where rank = 1
         group by model_version
       ) s on s.model_version = mv.version
  left join (
        select model_version, count(*) as runs, max(started_at) as last_run_at
          from score_runs
         group by model_version
       ) r on r.model_version = mv.version;

-- Requests received per day and champion-predicted chapter (null chapter: not scored by the
-- champion yet, or rejected).
create view daily_chapter_volumes as
select r.received_at::date as day,
       p.hs2 as chapter,
       count(*) as requests,
       count(*) filter (where r.status = 'scored' and p.request_id is not null) as scored,
       count(*) filter (where r.status = 'pending' or (r.status = 'scored' and p.request_id is null))
           as pending,
       count(*) filter (where r.status = 'rejected') as rejected,
       count(*) filter (where p.review) as flagged_for_review,
       avg(p.score)::double precision as mean_confidence
  from requests r
  left join (
        select p1.request_id, p1.hs2, p1.review, p1.score
          from predictions p1
          join current_champion c on p1.model_version = c.version
         where p1.rank = 1
       ) p on p.request_id = r.request_id
 group by 1, 2;

-- Requests and their status, without image bytes.
create view request_overview as
select request_id, received_at, title, description, image is not null as has_image, source,
       status, reject_reason, scored_at
  from requests;

create view intake_rejections as
select reject_id, request_id, source, reason, rejected_at from intake_rejects;

create view score_run_history as
select run_id, model_version, flow_run_id, started_at, finished_at, status, pending_at_start,
       scored, rejected, batches, seconds, model_seconds, db_seconds, error
  from score_runs;

-- The analyst role: NOLOGIN group, SELECT on the views only (views read the base tables
-- with their owner's rights, so no grant on a base table is needed). Logins join it via
-- hscode.db.create_analyst_login. Roles are cluster-wide, so creation tolerates a
-- concurrent creator and a user without CREATEROLE (then the grants are skipped).
do $$
begin
    begin
        create role hscode_analyst nologin;
    exception
        when duplicate_object or unique_violation then null;
        when insufficient_privilege then
            raise notice 'hscode_analyst not created: no CREATEROLE privilege';
    end;
    if exists (select 1 from pg_roles where rolname = 'hscode_analyst') then
        execute format('grant usage on schema %I to hscode_analyst', current_schema());
        execute 'grant select on current_champion, latest_predictions, latest_precedents, '
             || 'review_queue, model_leaderboard, daily_chapter_volumes, request_overview, '
             || 'intake_rejections, score_run_history to hscode_analyst';
    end if;
end
$$;

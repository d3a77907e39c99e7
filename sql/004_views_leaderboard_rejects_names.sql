-- Analyst views, second pass (issue 17). "create or replace view" keeps the views' grants
-- to hscode_analyst; it may only add columns at the end, so every new column comes last.

-- Every model version, promoted or not (hscode.db.sync_registry_versions records each
-- registered version at every scoring run, with its metrics), and where it stands:
-- champion now, promoted before (a former champion), or never promoted.
create or replace view model_leaderboard as
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
       r.last_run_at,
       (mv.champion or mv.promoted_at is not null) as ever_promoted,
       case when mv.champion then 'champion'
            when mv.promoted_at is not null then 'former champion'
            else 'never promoted' end as standing
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

-- Every request with its status, and the rows refused at intake (status 'rejected', the
-- intake's reason, received_at = when it was refused). An intake rejection is shown only
-- while no request with that id was accepted later, and only the latest one per request
-- id (rows without an id are each shown). rejected_by: 'intake', 'scorer' or null.
create or replace view request_overview as
select request_id, received_at, title, description, image is not null as has_image, source,
       status, reject_reason, scored_at,
       case when status = 'rejected' then 'scorer' end as rejected_by
  from requests
union all
select latest.request_id, latest.rejected_at, latest.title, latest.description,
       latest.has_image, latest.source, 'rejected', latest.reason, null::timestamptz,
       'intake'
  from (
        select distinct on (ir.request_id, case when ir.request_id is null then ir.reject_id end)
               ir.request_id,
               ir.rejected_at,
               coalesce(ir.row_data ->> 'title', ir.row_data ->> 'name',
                        ir.row_data ->> 'product_name', ir.row_data ->> '품명') as title,
               coalesce(ir.row_data ->> 'description', ir.row_data ->> 'desc',
                        ir.row_data ->> '물품설명') as description,
               coalesce(jsonb_strip_nulls(ir.row_data)
                        ?| array['image', 'image_bytes', 'image_path', 'image_file',
                                 'image_base64', 'image_b64'], false) as has_image,
               ir.source,
               ir.reason
          from intake_rejects ir
         where ir.request_id is null
            or not exists (select 1 from requests r where r.request_id = ir.request_id)
         order by ir.request_id, case when ir.request_id is null then ir.reject_id end,
                  ir.rejected_at desc, ir.reject_id desc
       ) latest;

-- The review queue with the English names latest_predictions has, beside the Korean ones.
create or replace view review_queue as
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
           as conflicting_precedents,
       lp.hs10_name_en  as top_hs10_name_en,
       lp.hs4_name_en   as top_hs4_name_en,
       lp.hs6           as top_hs6,
       lp.hs6_name_ko   as top_hs6_name_ko,
       lp.hs6_name_en   as top_hs6_name_en
  from latest_predictions lp
 where lp.rank = 1 and lp.review;

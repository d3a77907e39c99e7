-- One code format (issue 17): ten digits in data (every hs10 / hs6 / hs4 column, joins,
-- files), the portal's spelling for people: 3304.10-1000 (ten), 3304.10 (six), 3304 (four).
-- hs_display() is that spelling, the same as hscode.hs.format_hs10 and the artifacts; the
-- views people read get a *_display column beside each ten-digit one (new columns come last:
-- "create or replace view" may only append, and keeps the grants).

create or replace function hs_display(code text) returns text
language sql immutable parallel safe as $$
    select case
        when code ~ '^[0-9]{10}$' then substr(code, 1, 4) || '.' || substr(code, 5, 2) || '-'
                                       || substr(code, 7, 4)
        when code ~ '^[0-9]{6}$' then substr(code, 1, 4) || '.' || substr(code, 5, 2)
        else code
    end
$$;

grant execute on function hs_display(text) to hscode_analyst;

create or replace view latest_predictions as
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
       t4.name_en  as hs4_name_en,
       hs_display(p.hs10) as hs10_display,
       hs_display(p.hs6)  as hs6_display
  from predictions p
  join current_champion c on p.model_version = c.version
  join requests r on r.request_id = p.request_id
  left join tariff t10 on t10.code = p.hs10
  left join tariff t6 on t6.code = p.hs6
  left join tariff t4 on t4.code = p.hs4;

create or replace view latest_precedents as
select pr.request_id, pr.rank, pr.case_key, pr.hs10, pr.title as case_title, pr.similarity,
       pr.model_version, pr.run_id,
       hs_display(pr.hs10) as hs10_display
  from precedents pr
  join current_champion c on pr.model_version = c.version;

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
       lp.hs6_name_en   as top_hs6_name_en,
       lp.hs10_display  as top_hs10_display,
       (select array_agg(hs_display(p2.hs10) order by p2.rank) from predictions p2
         where p2.request_id = lp.request_id and p2.model_version = lp.model_version)
           as candidates_display
  from latest_predictions lp
 where lp.rank = 1 and lp.review;

-- The tariff edition each prediction's code was checked against (null: no current edition
-- was loaded, the code went out unchecked), and the edition of each scoring run.
alter table predictions add column tariff_edition text;
alter table score_runs add column tariff_edition text;

-- The champion's answers whose code is not in today's tariff: scored before a new edition
-- was loaded (or unchecked), to be re-scored or reviewed. Empty while no edition is current.
create view obsolete_predictions as
select lp.request_id,
       lp.rank,
       lp.hs10,
       lp.hs10_display,
       lp.hs10_name_ko,
       lp.score,
       lp.model_version,
       p.tariff_edition as checked_against,
       (select e.name from tariff_editions e where e.is_current) as current_edition,
       lp.scored_at,
       lp.title
  from latest_predictions lp
  join predictions p
    on p.request_id = lp.request_id and p.model_version = lp.model_version and p.rank = lp.rank
 where lp.is_current is false;

do $$
begin
    if exists (select 1 from pg_roles where rolname = 'hscode_analyst') then
        execute 'grant select on obsolete_predictions to hscode_analyst';
    end if;
end
$$;

-- Tariff editions (issue 14): which codes exist in today's tariff.
--
-- A tariff file is loaded as an EDITION (hscode.tariff.load_tariff: `hscode tariff load PATH
-- --edition NAME [--current]`): tariff_editions has one row per edition, at most one of them
-- current (a unique index says so); tariff_edition_codes says which codes each edition has,
-- with that edition's names. Re-loading an edition replaces its codes; re-loading the same
-- content changes nothing (content_sha256).
--
-- The `tariff` table stays, with its columns, for the views that join it: it is now DERIVED,
-- one row per code of any edition, rebuilt by tariff_refresh() (called by the loader after
-- every change, never written otherwise). Its names are the current edition's for a code in
-- the current edition (never mixed with older names), else each name's most recent
-- non-null value over the older editions that have the code (newest loaded first, as
-- loading used to merge files). is_current: the code is in the current edition, or (a code
-- under ten digits) a heading / subheading of one of the current edition's codes.
-- editions: the editions that have the code, the current one first, then newest loaded;
-- last_edition: the first of them. The analyst views show is_current as null (unchecked)
-- while no edition is current.
--
-- Rows already in `tariff` become the codes of an edition named 'legacy' (not current).
--
-- tariff_correlations: six-digit correlation pairs between HS editions (the UN's HS2022
-- tables: hscode.tariff.load_correlations, `hscode tariff correlations load PATH`), from an
-- older edition's code to a newer edition's. The edition names there are HS editions
-- (HS2017, HS2022), not tariff editions: no foreign key.
--
-- New view columns come last ("create or replace view" may only append, and keeps grants).

create table tariff_editions (
    name           text primary key check (length(name) between 1 and 100),
    loaded_at      timestamptz not null default now(),  -- when this content was loaded
    is_current     boolean not null default false,
    source_file    text,      -- the file's name (null: rows loaded from code, 'legacy')
    code_count     integer not null default 0,
    hs10_count     integer not null default 0,  -- codes of ten digits
    content_sha256 text       -- of the edition's codes and names: an identical reload is a no-op
);
create unique index tariff_editions_one_current on tariff_editions (is_current) where is_current;

create table tariff_edition_codes (
    edition     text not null references tariff_editions (name) on delete cascade,
    code        text not null check (code ~ '^[0-9]{2,10}$'),
    level       smallint not null generated always as (length(code)) stored,
    name_ko     text,
    name_en     text,
    parent_path text,
    primary key (edition, code)
);
create index tariff_edition_codes_code_idx on tariff_edition_codes (code);

alter table tariff
    add column is_current   boolean not null default false,
    add column editions     text[] not null default '{}',
    add column last_edition text;

-- the rows loaded before editions existed
insert into tariff_editions (name, loaded_at, is_current, source_file, code_count, hs10_count)
select 'legacy', max(loaded_at), false, null, count(*), count(*) filter (where level = 10)
  from tariff
having count(*) > 0;

insert into tariff_edition_codes (edition, code, name_ko, name_en, parent_path)
select 'legacy', code, name_ko, name_en, parent_path from tariff;

-- Rebuild `tariff` from the editions (see above). Unchanged rows are not rewritten.
create or replace function tariff_refresh() returns void
language plpgsql as $$
begin
    delete from tariff t
     where not exists (select 1 from tariff_edition_codes m where m.code = t.code);

    with ranked as (
        select m.code, m.edition, m.name_ko, m.name_en, m.parent_path, e.loaded_at,
               e.is_current,
               row_number() over (partition by m.code
                                  order by e.is_current desc, e.loaded_at desc, e.name) as rn
          from tariff_edition_codes m
          join tariff_editions e on e.name = m.edition
    ),
    merged as (
        select code,
               bool_or(is_current) as in_current,
               array_agg(edition order by rn) as editions,
               max(loaded_at) filter (where rn = 1) as loaded_at,
               case when bool_or(is_current) then max(name_ko) filter (where is_current)
                    else (array_agg(name_ko order by rn) filter (where name_ko is not null))[1]
               end as name_ko,
               case when bool_or(is_current) then max(name_en) filter (where is_current)
                    else (array_agg(name_en order by rn) filter (where name_en is not null))[1]
               end as name_en,
               case when bool_or(is_current) then max(parent_path) filter (where is_current)
                    else (array_agg(parent_path order by rn)
                            filter (where parent_path is not null))[1]
               end as parent_path
          from ranked
         group by code
    ),
    heads as (  -- the headings and subheadings of the current edition's codes
        select distinct left(m.code, n) as code
          from tariff_edition_codes m
          join tariff_editions e on e.name = m.edition and e.is_current
         cross join lateral generate_series(2, length(m.code) - 1) as n
    )
    insert into tariff as t (code, name_ko, name_en, parent_path, loaded_at, is_current,
                             editions, last_edition)
    select m.code, m.name_ko, m.name_en, m.parent_path, m.loaded_at,
           m.in_current or h.code is not null, m.editions, m.editions[1]
      from merged m
      left join heads h on h.code = m.code
    on conflict (code) do update set
        name_ko = excluded.name_ko,
        name_en = excluded.name_en,
        parent_path = excluded.parent_path,
        loaded_at = excluded.loaded_at,
        is_current = excluded.is_current,
        editions = excluded.editions,
        last_edition = excluded.last_edition
     where (t.name_ko, t.name_en, t.parent_path, t.loaded_at, t.is_current, t.editions,
            t.last_edition)
           is distinct from
           (excluded.name_ko, excluded.name_en, excluded.parent_path, excluded.loaded_at,
            excluded.is_current, excluded.editions, excluded.last_edition);
end
$$;

revoke execute on function tariff_refresh() from public;

select tariff_refresh();

create table tariff_correlations (
    from_edition text not null check (length(from_edition) between 1 and 100),
    from_code    text not null check (from_code ~ '^[0-9]{6}$'),
    to_edition   text not null check (length(to_edition) between 1 and 100),
    to_code      text not null check (to_code ~ '^[0-9]{6}$'),
    relationship text,  -- as the file types it (the UN's 1:1, n:1, 1:n, n:n, newer side first)
    source_file  text,
    loaded_at    timestamptz not null default now(),
    primary key (from_edition, from_code, to_edition, to_code)
);
create index tariff_correlations_to_idx on tariff_correlations (to_edition, to_code);

-- ----------------------------------------------------------------------- analyst views

-- Every code of every edition: its names (the current edition's first), whether it is in
-- today's tariff (null while no edition is current), the editions that have it.
create view tariff_codes as
select t.code,
       t.level,
       case when exists (select 1 from tariff_editions e where e.is_current)
            then t.is_current end as is_current,
       t.name_ko,
       t.name_en,
       t.parent_path,
       t.editions,
       t.last_edition,
       hs_display(t.code) as code_display,
       t.loaded_at
  from tariff t;

create view tariff_edition_overview as
select name, is_current, loaded_at, source_file, code_count, hs10_count
  from tariff_editions;

create view tariff_correlation_pairs as
select from_edition, from_code, to_edition, to_code, relationship, source_file, loaded_at,
       hs_display(from_code) as from_display,
       hs_display(to_code) as to_display
  from tariff_correlations;

-- As in 005, with is_current appended: is the predicted hs10 in today's tariff (null while
-- no edition is current). Names were already the `tariff` table's: current ones first.
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
       hs_display(p.hs6)  as hs6_display,
       case when exists (select 1 from tariff_editions e where e.is_current)
            then coalesce(t10.is_current, false) end as is_current
  from predictions p
  join current_champion c on p.model_version = c.version
  join requests r on r.request_id = p.request_id
  left join tariff t10 on t10.code = p.hs10
  left join tariff t6 on t6.code = p.hs6
  left join tariff t4 on t4.code = p.hs4;

-- As in 005, with is_current appended: is the precedent's code in today's tariff.
create or replace view latest_precedents as
select pr.request_id, pr.rank, pr.case_key, pr.hs10, pr.title as case_title, pr.similarity,
       pr.model_version, pr.run_id,
       hs_display(pr.hs10) as hs10_display,
       case when exists (select 1 from tariff_editions e where e.is_current)
            then coalesce(t.is_current, false) end as is_current
  from precedents pr
  join current_champion c on pr.model_version = c.version
  left join tariff t on t.code = pr.hs10;

-- As in 005, with is_current appended: is the top code in today's tariff.
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
           as candidates_display,
       lp.is_current
  from latest_predictions lp
 where lp.rank = 1 and lp.review;

-- The analyst role reads the new views (not the base tables), as in 002.
do $$
begin
    if exists (select 1 from pg_roles where rolname = 'hscode_analyst') then
        execute 'grant select on tariff_codes, tariff_edition_overview, '
             || 'tariff_correlation_pairs to hscode_analyst';
    end if;
end
$$;

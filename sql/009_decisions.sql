-- Reviewers' decisions (issue 16): a person decides a request's ten-digit code; the decided
-- codes measure the models on real requests (live accuracy) and teach the next training run
-- (hscode.review_cases).
--
-- decisions is append-only: a later decision for the same request supersedes the earlier
-- one (its `supersedes` names it) and every decision stays. A trigger refuses UPDATE and
-- DELETE; a decided request cannot be deleted (the foreign key has no cascade).
--
-- Every decision goes through record_decision() (owner-only), the ONE definition of what a
-- decision must be: the request exists, the code is ten digits once dots, spaces and hyphens
-- are removed, and it is a ten-digit code of the current tariff edition. A refusal raises
-- with its own SQLSTATE (hscode.decisions maps them to reason codes):
--   HS001 malformed_code      not ten digits
--   HS002 not_current_code    not a ten-digit code of the current edition
--   HS003 unknown_request     no request with that request_id
--   HS004 no_current_edition  no tariff edition is current
--   HS005 oversize_text       a note (or decided_by) too long
-- Recording a decision identical to the request's current one (same code, note, source and
-- decided_by) records nothing and returns the current one: re-importing a file is a no-op.
--
-- Reviewers (role hscode_reviewer) record decisions with decide(request_id, code, note): a
-- SECURITY DEFINER wrapper that records as session_user, source 'review'. They read what
-- analysts read (the role is a member of hscode_analyst, so analyst views added later are
-- theirs too) and the views below, and no table. Analysts read the views and cannot decide.
--
-- Rejected rows of a decisions file (hscode review import) go to intake_rejects like
-- refused requests, marked record_kind = 'decision'; request_overview lists refused
-- requests only (a refused decision naming an unknown request is not a request).
--
-- New view columns come last ("create or replace view" may only append, and keeps grants).

create table decisions (
    decision_id    bigint generated always as identity primary key,
    request_id     text not null references requests (request_id),
    hs10           text not null check (hs10 ~ '^[0-9]{10}$'),
    hs6            text not null generated always as (left(hs10, 6)) stored,
    hs4            text not null generated always as (left(hs10, 4)) stored,
    hs2            text not null generated always as (left(hs10, 2)) stored,
    decided_by     text not null check (length(decided_by) between 1 and 200),
    decided_at     timestamptz not null default now(),
    note           text check (length(note) between 1 and 4000),
    source         text not null check (source in ('review', 'import')),
    tariff_edition text not null,    -- the current edition the code was checked against
    supersedes     bigint references decisions (decision_id),  -- the decision it replaced
    check (supersedes < decision_id)
);
-- one successor per decision (and one first decision per request): two concurrent
-- decisions for a request cannot both supersede the same one; record_decision retries
create unique index decisions_one_successor on decisions (request_id, coalesce(supersedes, 0));
create index decisions_request_idx on decisions (request_id, decision_id desc);
create index decisions_decided_at_idx on decisions (decided_at);

create function decisions_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'decisions are append-only: % refused', tg_op
        using errcode = '55000',
              hint = 'record a new decision to supersede one (decide() or hscode review decide)';
end
$$;

create trigger decisions_append_only before update or delete on decisions
    for each row execute function decisions_append_only();

-- Validate and record one decision; see the header. Owner-only: it trusts decided_by.
-- request_id: exactly as stored. code: ten digits, dots / spaces / hyphens allowed
-- (3304.10-1000). note: trimmed, empty = none. source: 'review' or 'import'.
-- Returns the decision now current for the request and whether this call recorded it.
create function record_decision(
    p_request_id text,
    p_code text,
    p_note text,
    p_decided_by text,
    p_source text,
    out decision_id bigint,
    out recorded boolean,
    out hs10 text,
    out tariff_edition text
)
language plpgsql as $$
#variable_conflict use_column
declare
    v_code    text;
    v_note    text := nullif(btrim(p_note), '');
    v_by      text := btrim(p_decided_by);
    v_edition text;
    v_others  text;
    v_near    text;
    v_cur     record;
    v_tries   int := 0;
begin
    if p_source is null or p_source not in ('review', 'import') then
        raise exception 'decision source must be review or import, not %', quote_nullable(p_source)
            using errcode = '22023';
    end if;
    if v_by is null or v_by = '' then
        raise exception 'a decision needs decided_by' using errcode = '22023';
    end if;
    if length(v_by) > 200 then
        raise exception 'decided_by too long (% characters, at most 200)', length(v_by)
            using errcode = 'HS005';
    end if;
    if length(v_note) > 4000 then
        raise exception 'note too long (% characters, at most 4000)', length(v_note)
            using errcode = 'HS005';
    end if;

    if p_code is null or btrim(p_code) = '' then
        raise exception 'no code given: a decision needs a ten-digit HS code (3304.10-1000)'
            using errcode = 'HS001';
    end if;
    v_code := regexp_replace(p_code, '[[:space:].-]', '', 'g');
    if v_code !~ '^[0-9]{10}$' then
        raise exception using
            errcode = 'HS001',
            message = format('code %s is not a ten-digit HS code: %s',
                             quote_literal(left(p_code, 60)),
                             case when v_code ~ '[^0-9]'
                                  then 'it has characters other than digits, dots, spaces '
                                       'and hyphens'
                                  else length(v_code) || ' digits once dots, spaces and '
                                       'hyphens are removed' end),
            hint = 'give all ten digits, e.g. 3304.10-1000 or 3304101000';
    end if;

    if p_request_id is null
       or not exists (select 1 from requests r where r.request_id = p_request_id) then
        raise exception 'no request with request_id %', quote_nullable(left(p_request_id, 200))
            using errcode = 'HS003';
    end if;

    select e.name into v_edition from tariff_editions e where e.is_current;
    if v_edition is null then
        raise exception 'no current tariff edition to check the code against'
            using errcode = 'HS004',
                  hint = 'load one with `hscode tariff load PATH --edition NAME --current`';
    end if;
    if not exists (select 1 from tariff_edition_codes c
                    where c.edition = v_edition and c.code = v_code) then
        select string_agg(c.edition, ', ' order by e.loaded_at desc) into v_others
          from tariff_edition_codes c join tariff_editions e on e.name = c.edition
         where c.code = v_code;
        select string_agg(hs_display(x.code), ', ' order by x.code) into v_near
          from (select c.code from tariff_edition_codes c
                 where c.edition = v_edition and c.level = 10 and c.code like left(v_code, 6) || '%'
                 order by c.code limit 8) x;
        raise exception using
            errcode = 'HS002',
            message = format('code %s is not a ten-digit code of the current tariff edition %s%s',
                             hs_display(v_code), v_edition,
                             case when v_others is not null then ' (it is in ' || v_others || ')'
                                  else ' (no loaded edition has it)' end),
            hint = case when v_near is not null
                        then 'current codes under ' || hs_display(left(v_code, 6)) || ': '
                             || v_near
                        else 'the current edition has no code under '
                             || hs_display(left(v_code, 6)) end;
    end if;

    loop
        v_tries := v_tries + 1;
        select d.decision_id, d.hs10, d.note, d.source, d.decided_by, d.tariff_edition
          into v_cur
          from decisions d
         where d.request_id = p_request_id
         order by d.decision_id desc
         limit 1;
        if found and v_cur.hs10 = v_code and v_cur.note is not distinct from v_note
           and v_cur.source = p_source and v_cur.decided_by = v_by then
            decision_id := v_cur.decision_id;
            recorded := false;
            hs10 := v_cur.hs10;
            tariff_edition := v_cur.tariff_edition;
            return;
        end if;
        begin
            insert into decisions (request_id, hs10, decided_by, note, source, tariff_edition,
                                   supersedes)
            values (p_request_id, v_code, v_by, v_note, p_source, v_edition,
                    case when found then v_cur.decision_id end)
            returning decisions.decision_id into decision_id;
            recorded := true;
            hs10 := v_code;
            tariff_edition := v_edition;
            return;
        exception when unique_violation then
            -- a concurrent decision for this request superseded the same one first: look again
            if v_tries >= 20 then
                raise;
            end if;
        end;
    end loop;
end
$$;

revoke execute on function record_decision(text, text, text, text, text) from public;

-- A reviewer's decision: recorded as session_user (the login), source 'review'; returns
-- the id of the request's current decision (the existing one when it is identical).
create function decide(request_id text, code text, note text default null) returns bigint
language sql security definer as $$
    select r.decision_id from record_decision($1, $2, $3, session_user::text, 'review') r
$$;

revoke execute on function decide(text, text, text) from public;
-- a definer function must not find objects through the caller's search_path
do $$
begin
    execute format('alter function decide(text, text, text) set search_path = %I, pg_temp',
                   current_schema());
    execute format('alter function record_decision(text, text, text, text, text) '
                   'set search_path = %I, pg_temp', current_schema());
end
$$;

-- ----------------------------------------------------------------------- views

-- The latest decision per request (the highest decision_id), with how many it has had.
create view current_decisions as
select d.request_id,
       d.hs10,
       d.hs6,
       d.hs4,
       d.hs2,
       d.decided_by,
       d.decided_at,
       d.note,
       d.source,
       d.decision_id,
       d.n_decisions,
       hs_display(d.hs10) as hs10_display,
       d.tariff_edition,
       d.supersedes
  from (select x.*,
               row_number() over (partition by x.request_id order by x.decision_id desc) as rn,
               count(*) over (partition by x.request_id) as n_decisions
          from decisions x) d
 where d.rn = 1;

-- Every decision ever recorded, superseded ones included.
create view decision_history as
select d.decision_id,
       d.request_id,
       d.hs10,
       hs_display(d.hs10) as hs10_display,
       d.decided_by,
       d.decided_at,
       d.note,
       d.source,
       d.tariff_edition,
       d.supersedes,
       d.decision_id = (select max(n.decision_id) from decisions n
                         where n.request_id = d.request_id) as is_current
  from decisions d;

-- Per decided request (its current decision) and model version that scored it: where that
-- version ranked the decided code. rank_hs10: the rank of the decided ten-digit code;
-- rank_hs6 / rank_hs4: the position of the decided six / four-digit prefix among the
-- DISTINCT prefixes of the version's ranking in rank order (ranks 3304101000, 3304109000,
-- 3304200000 give the six-digit prefixes 330410, 330420: 330420 is second); null when the
-- version's top-k does not have it. top_hs10 / confidence / review: its rank-1 answer.
create view live_accuracy_requests as
with pairs as (
    select d.request_id, d.hs10 as decided_hs10, d.hs6 as decided_hs6, d.hs4 as decided_hs4,
           d.hs2 as decided_hs2, d.decided_at, d.decision_id,
           p.model_version, p.rank, p.hs10, p.hs6, p.hs4, p.score, p.review,
           min(p.rank) over (partition by p.request_id, p.model_version, p.hs6) as first6,
           min(p.rank) over (partition by p.request_id, p.model_version, p.hs4) as first4
      from current_decisions d
      join predictions p on p.request_id = d.request_id
),
positioned as (
    select pairs.*,
           dense_rank() over (partition by request_id, model_version order by first6) as pos6,
           dense_rank() over (partition by request_id, model_version order by first4) as pos4
      from pairs
)
select request_id,
       model_version,
       decided_hs10,
       decided_hs6,
       decided_hs4,
       decided_hs2,
       decided_at,
       decision_id,
       max(hs10) filter (where rank = 1) as top_hs10,
       max(score) filter (where rank = 1) as confidence,
       bool_or(review) filter (where rank = 1) as review,
       min(rank) filter (where hs10 = decided_hs10) as rank_hs10,
       min(pos6) filter (where hs6 = decided_hs6) as rank_hs6,
       min(pos4) filter (where hs4 = decided_hs4) as rank_hs4
  from positioned
 group by request_id, model_version, decided_hs10, decided_hs6, decided_hs4, decided_hs2,
          decided_at, decision_id
having count(*) filter (where rank = 1) = 1;

-- Live accuracy per model version and week of decision (the Monday, in the session's time
-- zone): over the decided requests the version scored, the share right at top-1 / top-3 at
-- ten, six and four digits (six and four: among the first k distinct prefixes, see
-- live_accuracy_requests), the share its rank-1 answer flagged for review, its mean rank-1
-- confidence (to hold against top1_10), and whether it is the champion now
-- (current_champion, as latest_predictions).
create view live_accuracy as
select a.model_version,
       date_trunc('week', a.decided_at)::date as week,
       count(*) as decided,
       (count(*) filter (where a.rank_hs10 <= 1))::double precision / count(*) as top1_10,
       (count(*) filter (where a.rank_hs10 <= 3))::double precision / count(*) as top3_10,
       (count(*) filter (where a.rank_hs6 <= 1))::double precision / count(*) as top1_6,
       (count(*) filter (where a.rank_hs6 <= 3))::double precision / count(*) as top3_6,
       (count(*) filter (where a.rank_hs4 <= 1))::double precision / count(*) as top1_4,
       (count(*) filter (where a.rank_hs4 <= 3))::double precision / count(*) as top3_4,
       (count(*) filter (where a.review))::double precision / count(*) as review_rate,
       avg(a.confidence)::double precision as mean_confidence,
       coalesce(a.model_version = (select c.version from current_champion c), false)
           as is_champion
  from live_accuracy_requests a
 group by a.model_version, date_trunc('week', a.decided_at)::date;

-- The same per model version and chapter (the decided code's first two digits), over every
-- decision, with the chapter's names.
create view live_accuracy_by_chapter as
select a.model_version,
       a.decided_hs2 as chapter,
       count(*) as decided,
       (count(*) filter (where a.rank_hs10 <= 1))::double precision / count(*) as top1_10,
       (count(*) filter (where a.rank_hs10 <= 3))::double precision / count(*) as top3_10,
       (count(*) filter (where a.rank_hs6 <= 1))::double precision / count(*) as top1_6,
       (count(*) filter (where a.rank_hs6 <= 3))::double precision / count(*) as top3_6,
       (count(*) filter (where a.rank_hs4 <= 1))::double precision / count(*) as top1_4,
       (count(*) filter (where a.rank_hs4 <= 3))::double precision / count(*) as top3_4,
       (count(*) filter (where a.review))::double precision / count(*) as review_rate,
       avg(a.confidence)::double precision as mean_confidence,
       coalesce(a.model_version = (select c.version from current_champion c), false)
           as is_champion,
       (select t.name_ko from tariff t where t.code = a.decided_hs2) as chapter_name_ko,
       (select t.name_en from tariff t where t.code = a.decided_hs2) as chapter_name_en
  from live_accuracy_requests a
 group by a.model_version, a.decided_hs2;

-- The champion's top-1 code against the decision, for every decided request where they
-- differ: both codes with their names, the champion's confidence, where the champion ranked
-- the decided code (null: not in its top-k), whether they agree at six / four digits.
create view decision_disagreements as
select d.request_id,
       r.title,
       p1.hs10 as champion_hs10,
       hs_display(p1.hs10) as champion_hs10_display,
       tc.name_ko as champion_name_ko,
       tc.name_en as champion_name_en,
       d.hs10 as decided_hs10,
       d.hs10_display as decided_hs10_display,
       td.name_ko as decided_name_ko,
       td.name_en as decided_name_en,
       p1.score as champion_score,
       d.decided_by,
       d.decided_at,
       d.note,
       d.source,
       p1.model_version,
       (select min(p.rank) from predictions p
         where p.request_id = d.request_id and p.model_version = p1.model_version
           and p.hs10 = d.hs10) as decided_rank,
       p1.hs6 = d.hs6 as same_hs6,
       p1.hs4 = d.hs4 as same_hs4,
       d.decision_id
  from current_decisions d
  join current_champion c on c.version is not null
  join predictions p1
    on p1.request_id = d.request_id and p1.model_version = c.version and p1.rank = 1
  join requests r on r.request_id = d.request_id
  left join tariff tc on tc.code = p1.hs10
  left join tariff td on td.code = d.hs10
 where p1.hs10 <> d.hs10;

-- ------------------------------------------------------- refused decision-file rows

alter table intake_rejects
    add column record_kind text not null default 'request'
        check (record_kind in ('request', 'decision'));

-- As in 006, with record_kind appended.
create or replace view intake_rejections as
select reject_id, request_id, source, reason, rejected_at, reason_code, record_kind
  from intake_rejects;

-- As in 006: only refused requests (a refused decision is not a request).
create or replace view request_overview as
select request_id, received_at, title, description, image is not null as has_image, source,
       status, reject_reason, scored_at,
       case when status = 'rejected' then 'scorer' end as rejected_by,
       reject_code
  from requests
union all
select latest.request_id, latest.rejected_at, latest.title, latest.description,
       latest.has_image, latest.source, 'rejected', latest.reason, null::timestamptz,
       'intake', latest.reason_code
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
               ir.reason,
               ir.reason_code
          from intake_rejects ir
         where ir.record_kind = 'request'
           and (ir.request_id is null
                or not exists (select 1 from requests r where r.request_id = ir.request_id))
         order by ir.request_id, case when ir.request_id is null then ir.reject_id end,
                  ir.rejected_at desc, ir.reject_id desc
       ) latest;

-- ----------------------------------------------------------------------- roles

-- The reviewer role: NOLOGIN group (logins join it via hscode.db.create_reviewer_login),
-- created as hscode_analyst is in 002 (tolerating a concurrent creator and a user without
-- CREATEROLE, then the grants are skipped). A member of hscode_analyst, so it reads every
-- analyst view, those of later migrations too; where membership cannot be granted (no
-- ADMIN OPTION on hscode_analyst) it gets SELECT on the analyst's views of this schema as
-- they are now.
do $$
declare
    v_view text;
begin
    begin
        create role hscode_reviewer nologin;
    exception
        when duplicate_object or unique_violation then null;
        when insufficient_privilege then
            raise notice 'hscode_reviewer not created: no CREATEROLE privilege';
    end;
    if exists (select 1 from pg_roles where rolname = 'hscode_analyst') then
        execute 'grant select on current_decisions, decision_history, live_accuracy_requests, '
             || 'live_accuracy, live_accuracy_by_chapter, decision_disagreements '
             || 'to hscode_analyst';
    end if;
    if exists (select 1 from pg_roles where rolname = 'hscode_reviewer') then
        execute format('grant usage on schema %I to hscode_reviewer', current_schema());
        if exists (select 1 from pg_roles where rolname = 'hscode_analyst') then
            begin
                execute 'grant hscode_analyst to hscode_reviewer';
            exception when insufficient_privilege or invalid_grant_operation then
                raise notice 'hscode_reviewer not made a member of hscode_analyst: granting '
                             'the analyst views one by one';
                for v_view in
                    select format('%I', g.table_name)
                      from information_schema.role_table_grants g
                     where g.grantee = 'hscode_analyst' and g.privilege_type = 'SELECT'
                       and g.table_schema = current_schema()
                loop
                    execute 'grant select on ' || v_view || ' to hscode_reviewer';
                end loop;
            end;
        end if;
        execute 'grant select on current_decisions, decision_history, live_accuracy_requests, '
             || 'live_accuracy, live_accuracy_by_chapter, decision_disagreements '
             || 'to hscode_reviewer';
        execute 'grant execute on function decide(text, text, text), hs_display(text) '
             || 'to hscode_reviewer';
    end if;
end
$$;

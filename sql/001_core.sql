-- Core tables: requests (intake), intake rejects, tariff names, model versions, score runs,
-- predictions and their precedents. Names are unqualified: they land in the connection's
-- current schema (public on a fresh database).

-- A request to classify. Rows may be inserted directly by SQL (status defaults to pending)
-- or through hscode.intake (validated first). The scorer re-validates, so a bad row
-- inserted by hand is rejected with its reason instead of stopping the batch.
create table requests (
    request_id    text primary key,
    received_at   timestamptz not null default now(),
    title         text not null default '',
    description   text,
    image         bytea,
    image_sha256  text,
    source        text,
    status        text not null default 'pending'
                  check (status in ('pending', 'scored', 'rejected')),
    reject_reason text,
    scored_at     timestamptz,
    check ((status = 'rejected') = (reject_reason is not null))
);
create index requests_pending_idx on requests (request_id) where status = 'pending';
create index requests_received_idx on requests (received_at);

-- Rows refused at intake (never entered requests), with the reason.
create table intake_rejects (
    reject_id   bigint generated always as identity primary key,
    request_id  text,
    source      text,
    reason      text not null,
    row_data    jsonb,
    rejected_at timestamptz not null default now()
);
create index intake_rejects_request_idx on intake_rejects (request_id);

-- Korean tariff table: codes at 2..10 digits with their names.
create table tariff (
    code      text primary key check (code ~ '^[0-9]{2,10}$'),
    level     smallint not null generated always as (length(code)) stored,
    name_ko   text,
    name_en   text,
    parent_path text,  -- Korean names of the enclosing headings, "a > b > c" (hsk_codes.csv)
    loaded_at timestamptz not null default now()
);

-- Model versions known to the database; the registry side upserts metrics and the
-- champion flag (hscode.db.record_model_version). At most one champion.
create table model_versions (
    version       text primary key,
    metrics       jsonb not null default '{}'::jsonb,
    champion      boolean not null default false,
    registered_at timestamptz not null default now(),
    promoted_at   timestamptz,
    updated_at    timestamptz not null default now()
);
create unique index model_versions_one_champion on model_versions (champion) where champion;

-- One row per scoring run: what ran, with which model, for which flow run, and how it went.
create table score_runs (
    run_id        bigint generated always as identity primary key,
    model_version text not null references model_versions (version),
    flow_run_id   text,
    started_at    timestamptz not null default now(),
    finished_at   timestamptz,
    status        text not null default 'running'
                  check (status in ('running', 'finished', 'failed')),
    pending_at_start integer,
    scored        integer not null default 0,
    rejected      integer not null default 0,
    batches       integer not null default 0,
    seconds       double precision,
    model_seconds double precision,
    db_seconds    double precision,
    error         text
);
create index score_runs_version_idx on score_runs (model_version, started_at);

-- Top-k codes per (request, model version). The key makes re-scoring idempotent.
create table predictions (
    request_id    text not null references requests (request_id) on delete cascade,
    model_version text not null,
    rank          smallint not null check (rank >= 1),
    hs10          text not null check (hs10 ~ '^[0-9]{10}$'),
    hs6           text not null,
    hs4           text not null,
    hs2           text not null,
    score         real not null,
    review        boolean not null,
    review_reason text,
    run_id        bigint,       -- score_runs.run_id
    flow_run_id   text,         -- the orchestrator's run, when scored by a flow
    scored_at     timestamptz not null default now(),
    primary key (request_id, model_version, rank)
);
create index predictions_version_rank_idx on predictions (model_version, rank);

-- Most similar past cases supporting each (request, model version) answer.
create table precedents (
    request_id    text not null references requests (request_id) on delete cascade,
    model_version text not null,
    rank          smallint not null check (rank >= 1),
    case_key      text not null,
    hs10          text not null,
    title         text,
    similarity    real not null,
    run_id        bigint,
    primary key (request_id, model_version, rank)
);

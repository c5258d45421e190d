-- Ferry's catalog on PostgreSQL: the same tables, columns and constraints as
-- migrations/sqlite, in PostgreSQL's types. Times are bigint Unix milliseconds (UTC); they
-- are rendered as ISO 8601 at the edges. Secrets are never stored, only their SHA-256.
-- JSON documents stay text, as on SQLite: Ferry never queries inside them.

-- key/value settings that must be shared by every process on this catalog
-- (the signing secret is created once here).
create table settings (
    key   text primary key,
    value bytea not null
);

create table users (
    id         bigint generated always as identity primary key,
    name       text not null unique,
    level      text not null check (level in ('viewer', 'uploader', 'manager', 'admin')),
    created_ms bigint not null
);

create table tokens (
    id          bigint generated always as identity primary key,
    user_id     bigint not null references users(id),
    secret_hash text not null unique,
    scopes      text not null,           -- canonical comma list, see domain::ScopeSet
    revoked_ms  bigint,                  -- null while the token is live
    created_ms  bigint not null
);

create table devices (
    id                   bigint generated always as identity primary key,
    user_id              bigint not null references users(id),
    name                 text not null,
    key_hash             text not null unique,
    upload_priority      bigint not null default 0,
    is_disabled          boolean not null default false,
    is_upload_disabled   boolean not null default false,
    is_download_disabled boolean not null default false,
    created_ms           bigint not null,
    unique (user_id, name)
);

create table volumes (
    id          bigint generated always as identity primary key,
    user_id     bigint not null references users(id),
    name        text not null,
    -- per-volume change counter, incremented inside each write transaction (change feeds);
    -- the row lock that increment takes also orders concurrent writers of one volume
    change_seq  bigint not null default 0,
    created_ms  bigint not null,
    unique (user_id, name)
);

-- a media grant mounts one of the owner's volumes on one of the owner's devices
create table grants (
    id          bigint generated always as identity primary key,
    device_id   bigint not null references devices(id),
    volume_id   bigint not null references volumes(id),
    name        text not null,
    prefix_path text not null default '/',
    is_disabled boolean not null default false,
    created_ms  bigint not null
);
create index grants_by_device on grants(device_id);

-- content, stored once, keyed by SHA-256
create table blobs (
    sha256       text primary key,
    size         bigint not null,
    chunked_hash text,                  -- API.md §1 top-hash, only for blobs over 16 MiB
    created_ms   bigint not null,
    last_used_ms bigint not null        -- GC keeps a blob at least gc_grace after this
);
create index blobs_by_chunked_hash on blobs(chunked_hash) where chunked_hash is not null;
create index blobs_by_last_use on blobs(last_used_ms);

-- an account's hold on content it uploaded and Ferry verified (dedup and privacy rule)
create table holds (
    user_id    bigint not null references users(id),
    sha256     text not null references blobs(sha256),
    created_ms bigint not null,
    primary key (user_id, sha256)
);
create index holds_by_blob on holds(sha256);

create table jobs (
    id             bigint generated always as identity primary key,
    kind           text not null,
    payload        text not null,       -- JSON
    dedup_key      text,                -- at most one unfinished job per key
    status         text not null default 'pending'
                   check (status in ('pending', 'running', 'done', 'failed')),
    attempts       bigint not null default 0,
    run_after_ms   bigint not null,
    lease_until_ms bigint,              -- a running job whose lease passed is claimable again
    last_error     text,
    created_ms     bigint not null,
    updated_ms     bigint not null
);
create unique index jobs_unfinished_key on jobs(dedup_key)
    where dedup_key is not null and status in ('pending', 'running');
create index jobs_runnable on jobs(status, run_after_ms);

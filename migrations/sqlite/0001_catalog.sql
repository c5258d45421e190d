-- Ferry's catalog on SQLite. Times are integer Unix milliseconds (UTC); they are rendered
-- as ISO 8601 at the edges. Secrets are never stored, only their SHA-256.

-- key/value settings that must be shared by every process on this catalog
-- (the signing secret is created once here).
create table settings (
    key   text primary key,
    value blob not null
);

create table users (
    id         integer primary key autoincrement,
    name       text not null unique,
    level      text not null check (level in ('viewer', 'uploader', 'manager', 'admin')),
    created_ms integer not null
);

create table tokens (
    id          integer primary key autoincrement,
    user_id     integer not null references users(id),
    secret_hash text not null unique,
    scopes      text not null,           -- canonical comma list, see domain::ScopeSet
    revoked_ms  integer,                 -- null while the token is live
    created_ms  integer not null
);

create table devices (
    id                   integer primary key autoincrement,
    user_id              integer not null references users(id),
    name                 text not null,
    key_hash             text not null unique,
    upload_priority      integer not null default 0,
    is_disabled          integer not null default 0,
    is_upload_disabled   integer not null default 0,
    is_download_disabled integer not null default 0,
    created_ms           integer not null,
    unique (user_id, name)
);

create table volumes (
    id          integer primary key autoincrement,
    user_id     integer not null references users(id),
    name        text not null,
    -- per-volume change counter, incremented inside each write transaction (change feeds)
    change_seq  integer not null default 0,
    created_ms  integer not null,
    unique (user_id, name)
);

-- a media grant mounts one of the owner's volumes on one of the owner's devices
create table grants (
    id          integer primary key autoincrement,
    device_id   integer not null references devices(id),
    volume_id   integer not null references volumes(id),
    name        text not null,
    prefix_path text not null default '/',
    is_disabled integer not null default 0,
    created_ms  integer not null
);
create index grants_by_device on grants(device_id);

-- content, stored once, keyed by SHA-256
create table blobs (
    sha256       text primary key,
    size         integer not null,
    chunked_hash text,                  -- API.md §1 top-hash, only for blobs over 16 MiB
    created_ms   integer not null,
    last_used_ms integer not null       -- GC keeps a blob at least gc_grace after this
);
create index blobs_by_chunked_hash on blobs(chunked_hash) where chunked_hash is not null;
create index blobs_by_last_use on blobs(last_used_ms);

-- an account's hold on content it uploaded and Ferry verified (dedup and privacy rule)
create table holds (
    user_id    integer not null references users(id),
    sha256     text not null references blobs(sha256),
    created_ms integer not null,
    primary key (user_id, sha256)
);
create index holds_by_blob on holds(sha256);

create table jobs (
    id          integer primary key autoincrement,
    kind        text not null,
    payload     text not null,          -- JSON
    dedup_key   text,                   -- at most one unfinished job per key
    status      text not null default 'pending'
                check (status in ('pending', 'running', 'done', 'failed')),
    attempts    integer not null default 0,
    run_after_ms integer not null,
    lease_until_ms integer,
    last_error  text,
    created_ms  integer not null,
    updated_ms  integer not null
);
create unique index jobs_unfinished_key on jobs(dedup_key)
    where dedup_key is not null and status in ('pending', 'running');
create index jobs_runnable on jobs(status, run_after_ms);

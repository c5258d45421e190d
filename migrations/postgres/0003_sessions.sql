-- Upload-session family: folders of a user's library, upload sessions with limits, and the
-- files stored in folders (by session uploads, remote fetches, blob imports, watch folders).

create table folders (
    id         bigint generated always as identity primary key,
    user_id    bigint not null references users(id),
    folder_key text not null,               -- the client's folder_id
    created_ms bigint not null,
    unique (user_id, folder_key)
);

create table sessions (
    ulid            text primary key,
    user_id         bigint not null references users(id),
    folder_id       bigint not null references folders(id),
    max_filesize    bigint,
    max_files       bigint,
    max_size        bigint,
    file_extensions text,                   -- lowercase comma list, null = any
    no_transcode    boolean not null default false,
    hide_response   boolean not null default false,
    autofinish      boolean not null default true,
    -- reservations: files and bytes of uploads accepted or in flight. They are taken by
    -- single guarded updates (the row lock makes each atomic), so concurrent uploads can
    -- never exceed the limits.
    reserved_files  bigint not null default 0,
    reserved_bytes  bigint not null default 0,
    finished_ms     bigint,
    expires_ms      bigint not null,
    created_ms      bigint not null
);
create index sessions_expiry on sessions(expires_ms);

create table files (
    id           text primary key,          -- ULID, the file_id clients see
    user_id      bigint not null references users(id),
    folder_id    bigint not null references folders(id),
    session_ulid text,                      -- the session it was uploaded through, if any
    job_id       bigint,                    -- the remote-fetch job that made it, if any
    watch_key    text unique,               -- watch folder: path, size and mtime (ingest once)
    title        text not null,
    sha256       text not null references blobs(sha256),
    size         bigint not null,
    content_type text not null,
    created_ms   bigint not null
);
create index files_by_session on files(session_ulid) where session_ulid is not null;
create index files_by_job on files(job_id) where job_id is not null;
create index files_by_blob on files(sha256);

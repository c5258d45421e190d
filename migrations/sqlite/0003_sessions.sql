-- Upload-session family: folders of a user's library, upload sessions with limits, and the
-- files stored in folders (by session uploads, remote fetches, blob imports, watch folders).

create table folders (
    id         integer primary key autoincrement,
    user_id    integer not null references users(id),
    folder_key text not null,               -- the client's folder_id
    created_ms integer not null,
    unique (user_id, folder_key)
);

create table sessions (
    ulid            text primary key,
    user_id         integer not null references users(id),
    folder_id       integer not null references folders(id),
    max_filesize    integer,
    max_files       integer,
    max_size        integer,
    file_extensions text,                   -- lowercase comma list, null = any
    no_transcode    integer not null default 0,
    hide_response   integer not null default 0,
    autofinish      integer not null default 1,
    -- reservations: files and bytes of uploads accepted or in flight. They are taken
    -- atomically before bytes are kept, so concurrent uploads can never exceed the limits.
    reserved_files  integer not null default 0,
    reserved_bytes  integer not null default 0,
    finished_ms     integer,
    expires_ms      integer not null,
    created_ms      integer not null
);
create index sessions_expiry on sessions(expires_ms);

create table files (
    id           text primary key,          -- ULID, the file_id clients see
    user_id      integer not null references users(id),
    folder_id    integer not null references folders(id),
    session_ulid text,                      -- the session it was uploaded through, if any
    job_id       integer,                   -- the remote-fetch job that made it, if any
    watch_key    text unique,               -- watch folder: path, size and mtime (ingest once)
    title        text not null,
    sha256       text not null references blobs(sha256),
    size         integer not null,
    content_type text not null,
    created_ms   integer not null
);
create index files_by_session on files(session_ulid) where session_ulid is not null;
create index files_by_job on files(job_id) where job_id is not null;
create index files_by_blob on files(sha256);

-- Media items (a named reference to a blob) and unfinished multipart uploads.

-- A media item in a volume at a path (device family). Deleting keeps a tombstone
-- (is_deleted = true) so sync clients see the delete in the change feed.
create table media (
    id                     bigint generated always as identity primary key,
    volume_id              bigint not null references volumes(id),
    path                   text not null,
    sha256                 text not null references blobs(sha256),
    file_hash              text not null,   -- the device family's hash of the content
    size                   bigint not null,
    ctime                  text,            -- client-supplied, ISO 8601
    mtime                  text,
    is_deleted             boolean not null default false,
    deleted_ms             bigint,
    last_updated_ms        bigint not null,
    last_updated_user_id   bigint not null references users(id),
    last_updated_device_id bigint references devices(id),
    -- the volume's change counter at this item's last change (the media_list cursor)
    change_seq             bigint not null,
    created_ms             bigint not null,
    unique (volume_id, path)
);
create index media_feed on media(volume_id, change_seq);
create index media_by_hash on media(volume_id, file_hash);
create index media_by_blob on media(sha256);
create index media_tombstones on media(deleted_ms) where is_deleted;

-- An unfinished transfer in parts. Parts stay in upload staging until the upload is
-- completed, aborted or expires; they survive restarts.
create table uploads (
    id           text primary key,          -- ULID, the upload_id clients see
    family       text not null,             -- 'device' or 'multipart'
    user_id      bigint not null references users(id),
    grant_id     bigint references grants(id),
    file_key     text,                      -- multipart family: the client's file_id
    file_size    bigint,
    file_hash    text,
    part_count   bigint,
    content_type text,
    state        text not null default 'open' check (state in ('open', 'completed')),
    result       text,                      -- JSON answer of the completion (idempotent repeats)
    sha256       text references blobs(sha256), -- the completed file's content
    size         bigint,
    expires_ms   bigint not null,
    created_ms   bigint not null
);
create index uploads_expiry on uploads(expires_ms);
create unique index uploads_file_key on uploads(user_id, file_key) where file_key is not null;
create index uploads_by_blob on uploads(sha256) where sha256 is not null;

create table upload_parts (
    upload_id   text not null references uploads(id) on delete cascade,
    part_num    bigint not null,
    staging_key text not null,
    size        bigint not null,
    sha256      text not null,
    etag        text not null,
    primary key (upload_id, part_num)
);

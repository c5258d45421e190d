-- Device gallery family: events (a device's media, newest first) and pull sources.

-- an HTTP base URL serving index.json and the files of a device (gallery pull)
alter table devices add column pull_url text;

create table events (
    id               text primary key,      -- 'evt_' + ULID
    user_id          bigint not null references users(id),
    device_id        bigint not null references devices(id),
    name             text not null,
    media_type       text not null check (media_type in ('image', 'video', 'audio', 'document', 'other')),
    content_type     text not null,
    sha256           text references blobs(sha256),           -- null until the bytes are pulled
    size             bigint not null,      -- of the file (declared by the index until pulled)
    thumbnail_sha256 text references blobs(sha256),
    metadata         text,                  -- JSON object
    source_name      text,                  -- the name in the device's index.json (pull)
    watch_key        text unique,           -- incoming folder: path, size and mtime (ingest once)
    is_deleted       boolean not null default false,
    deleted_ms       bigint,
    created_ms       bigint not null,      -- the event's time, newest first
    inserted_ms      bigint not null,
    unique (device_id, source_name)
);
create index events_listing on events(device_id, is_deleted, created_ms desc, id desc);
create index events_by_blob on events(sha256);
create index events_by_thumbnail on events(thumbnail_sha256);

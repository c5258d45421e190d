-- tus resumable uploads (API.md §5, issue 20). Everything a replica needs to continue an
-- upload lives here: its offset, its staging (the blob store's resumable state) and the
-- state of its hashes at that offset, so completing it never reads its bytes again.

create table tus_uploads (
    id             text primary key,      -- 128 random bits in hex: the /files/<id> clients see
    user_id        bigint not null references users(id),
    length         bigint,                -- null until declared (creation-defer-length)
    offset_bytes   bigint not null default 0,
    metadata       text,                  -- Upload-Metadata as sent; HEAD returns it unchanged
    concat         text check (concat in ('partial', 'final')),
    concat_parts   text,                  -- a final upload's partial uploads, space-separated ids
    -- where the finished upload goes: a library folder (by key) or a gallery device
    folder_key     text,
    device_id      bigint,
    file_name      text,
    file_type      text,
    expect_sha256  text,                  -- the `sha256` metadata: the whole file must match
    state          text not null default 'open'
                   check (state in ('open', 'received', 'completed', 'expired')),
    staging_key    text not null,         -- the resumable staging object (uploads/<ULID>)
    staging_state  text,                  -- the store's resumable state while open
    hash_state     bytea,                 -- SHA-256 (and top-hash) state at offset_bytes
    head           bytea,                 -- the file's first bytes, for sniffing
    sha256         text,                  -- the content, once every byte is in
    chunked_hash   text,
    result         text,                  -- JSON: the library file or event it became
    -- one PATCH at a time, on any replica: a lease that runs out if its holder dies
    lease_token    text,
    lease_until_ms bigint,
    expires_ms     bigint not null,       -- renewed by every PATCH (Upload-Expires)
    created_ms     bigint not null
);
create index tus_uploads_expiry on tus_uploads(expires_ms);

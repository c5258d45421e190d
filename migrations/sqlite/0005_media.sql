-- Media understanding (issue 8): what processing learnt from a blob's bytes, once per blob
-- (the same bytes uploaded twice are processed once).

-- One row per processed blob. It goes with its blob (GC deletes the blob row, the cascade
-- deletes this one); a thumbnail referenced here is kept alive by it.
create table blob_media (
    sha256           text primary key references blobs(sha256) on delete cascade,
    status           text not null check (status in ('done', 'failed')),
    metadata         text,                  -- JSON object: see media::Metadata
    thumbnail_sha256 text references blobs(sha256),  -- a generated JPEG, stored as a blob
    error            text,                  -- why processing failed, or why there is no thumbnail
    updated_ms       integer not null
);
create index blob_media_by_thumbnail on blob_media(thumbnail_sha256) where thumbnail_sha256 is not null;

-- Content stored before this migration is processed too: one job per blob, keyed like the
-- jobs commit_blob queues for new content.
insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms)
select 'media_process', json_object('sha256', b.sha256), 'media:' || b.sha256, t.now_ms, t.now_ms, t.now_ms
from blobs b, (select cast(strftime('%s', 'now') as integer) * 1000 as now_ms) t
where true
on conflict do nothing;

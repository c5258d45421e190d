-- Playable renditions (issue 24): what Ferry made of content a browser cannot show (an
-- H.264/AAC MP4 of a HEVC MOV, a JPEG of a HEIC photo), once per content.

-- One row per content whose rendition was attempted. It goes with its content (collection
-- deletes the blob row, the cascade deletes this one); the rendition blob is kept alive by it.
create table blob_renditions (
    sha256           text primary key references blobs(sha256) on delete cascade,
    status           text not null check (status in ('done', 'failed')),
    rendition_sha256 text references blobs(sha256),  -- null when it failed
    content_type     text,                           -- video/mp4 or image/jpeg
    error            text,                           -- why there is none
    updated_ms       bigint not null
);
create index blob_renditions_by_rendition on blob_renditions(rendition_sha256) where rendition_sha256 is not null;

-- Videos and HEIF photos stored before this migration get their rendition job too (the job
-- decides whether they need one, under FERRY_TRANSCODE).
insert into jobs (kind, payload, dedup_key, run_after_ms, created_ms, updated_ms)
select 'transcode', json_build_object('sha256', bm.sha256)::text, 'transcode:' || bm.sha256, t.now_ms, t.now_ms, t.now_ms
from blob_media bm, (select (extract(epoch from now()) * 1000)::bigint as now_ms) t
where bm.metadata::json ->> 'kind' = 'video' or bm.metadata::json ->> 'format' in ('heic', 'heif')
on conflict (dedup_key) where dedup_key is not null and status in ('pending', 'running') do nothing;

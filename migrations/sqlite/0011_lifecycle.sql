-- Storage lifecycle (issue 21): deleting frees space, and collection costs what the garbage
-- costs, not what the store holds.

-- A reason to look again at whether an account still needs its hold on some content. Written
-- when a hold may have become unneeded; a maintenance pass takes the ones that are due:
--   committed    content was committed for the account (a signed PUT not yet used by a media
--                item keeps its hold at least FERRY_UPLOAD_EXPIRY after this);
--   deleted      an item of the account that used the content was deleted or replaced (the
--                hold stays FERRY_TOMBSTONE_RETENTION after this, so undo and sync still work);
--   unreferenced a tombstone or deleted event was purged after its retention (due at once).
-- While any check of the account's content is pending, its hold stays. When a due check finds
-- no item of the account using the content, the hold goes; when the last hold goes, the
-- content becomes a collection candidate.
create table hold_checks (
    user_id  integer not null,
    sha256   text not null,
    reason   text not null check (reason in ('committed', 'deleted', 'unreferenced')),
    since_ms integer not null,
    primary key (user_id, sha256, reason)
);
create index hold_checks_due on hold_checks(reason, since_ms);

-- Content nothing may need any more, since when. Collection looks only here (and checks
-- every reference again inside the blob's critical section), so a pass costs what the
-- candidates cost.
create table collect_candidates (
    sha256   text primary key,
    since_ms integer not null
);
create index collect_candidates_due on collect_candidates(since_ms);

-- Purging reads deleted items by deletion time. (The tombstone index of 0002 said
-- `is_deleted = 1`, which SQLite cannot match to the queries' `is_deleted`.)
drop index media_tombstones;
create index media_tombstones on media(deleted_ms) where is_deleted;
create index events_deleted on events(deleted_ms) where is_deleted;

-- What was there before: every hold is looked at once its upload expiry has passed, and
-- every blob nobody holds is a candidate.
insert into hold_checks (user_id, sha256, reason, since_ms)
select user_id, sha256, 'committed', created_ms from holds;
insert into collect_candidates (sha256, since_ms)
select b.sha256, b.last_used_ms from blobs b where not exists (select 1 from holds h where h.sha256 = b.sha256);

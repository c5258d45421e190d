-- Storage safety (issue 16/17): what a crash or a race must never break.

-- Bytes about to be placed at their content address (a commit) or removed from it (a
-- collection), written before the bytes move. After a crash the startup sweep (and a
-- maintenance step) finishes what an intent names: bytes whose row was never recorded are
-- removed, bytes whose row is gone are removed. Bytes the catalog knows nothing about are
-- never removed automatically (`ferry admin check --repair` does, on request).
create table blob_intents (
    id         integer primary key autoincrement,
    sha256     text not null,
    kind       text not null check (kind in ('place', 'collect')),
    created_ms integer not null
);
create index blob_intents_by_age on blob_intents(created_ms);

-- A completion in progress claims its upload: a second completion waits for the first,
-- an abort is refused, and once the lease has passed (the completer died) another
-- completion takes over. The token says whose claim it is.
alter table uploads add column claim_token text;
alter table uploads add column claim_until_ms integer;

-- Signed upload targets that may be used once (the gallery's upload_url and
-- thumbnail_upload_url). A claim is taken before the body is read, so a replay is refused
-- before a byte of it is kept; a failed upload gives its claim back.
create table used_targets (
    target           text primary key,
    used_ms          integer,           -- null while an upload through it is in flight
    claimed_until_ms integer not null,  -- an in-flight claim older than this is abandoned
    expires_ms       integer not null   -- the URL's own expiry: the row may go after it
);
create index used_targets_expiry on used_targets(expires_ms);

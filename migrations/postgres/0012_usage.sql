-- Usage and quotas (issue 22). What an account stores is kept in counters on its row, moved
-- by triggers on every table that holds its items or its holds, so reading usage costs the
-- same at any size and no write path can forget it.
alter table users add column quota_bytes bigint;                       -- null: no quota
alter table users add column held_bytes bigint not null default 0;     -- distinct content held
alter table users add column media_items bigint not null default 0;    -- live items, every family
alter table users add column logical_bytes bigint not null default 0;  -- their sizes, each counted

create function usage_add(account bigint, items bigint, bytes bigint) returns void language sql as $$
    update users set media_items = media_items + items, logical_bytes = logical_bytes + bytes where id = account
$$;

-- A bulk copy (migrate-store) sets `ferry.counting` to 'off' for its transactions and counts
-- once at the end: row by row, the same account row would be rewritten for every copied row.

-- holds: each distinct content an account holds, once
create function holds_usage() returns trigger language plpgsql as $$
begin
    if current_setting('ferry.counting', true) = 'off' then return null; end if;
    if tg_op = 'INSERT' then
        update users set held_bytes = held_bytes + (select size from blobs where sha256 = new.sha256) where id = new.user_id;
    else
        update users set held_bytes = held_bytes - (select size from blobs where sha256 = old.sha256) where id = old.user_id;
    end if;
    return null;
end $$;
create trigger holds_usage after insert or delete on holds for each row execute function holds_usage();

-- device media: live while not deleted
create function media_usage() returns trigger language plpgsql as $$
begin
    if current_setting('ferry.counting', true) = 'off' then return null; end if;
    if tg_op in ('UPDATE', 'DELETE') and not old.is_deleted then
        perform usage_add((select user_id from volumes where id = old.volume_id), -1, -old.size);
    end if;
    if tg_op in ('UPDATE', 'INSERT') and not new.is_deleted then
        perform usage_add((select user_id from volumes where id = new.volume_id), 1, new.size);
    end if;
    return null;
end $$;
create trigger media_usage after insert or delete or update of is_deleted, size on media
    for each row execute function media_usage();

-- library files: live while they exist
create function files_usage() returns trigger language plpgsql as $$
begin
    if current_setting('ferry.counting', true) = 'off' then return null; end if;
    if tg_op = 'DELETE' then
        perform usage_add(old.user_id, -1, -old.size);
    else
        perform usage_add(new.user_id, 1, new.size);
    end if;
    return null;
end $$;
create trigger files_usage after insert or delete on files for each row execute function files_usage();

-- gallery events: live while not deleted and holding content (a harvested event is not, until pulled)
create function events_usage() returns trigger language plpgsql as $$
begin
    if current_setting('ferry.counting', true) = 'off' then return null; end if;
    if tg_op in ('UPDATE', 'DELETE') and not old.is_deleted and old.sha256 is not null then
        perform usage_add(old.user_id, -1, -old.size);
    end if;
    if tg_op in ('UPDATE', 'INSERT') and not new.is_deleted and new.sha256 is not null then
        perform usage_add(new.user_id, 1, new.size);
    end if;
    return null;
end $$;
create trigger events_usage after insert or delete or update of is_deleted, sha256, size on events
    for each row execute function events_usage();

-- multipart-family files: live once completed
create function uploads_usage() returns trigger language plpgsql as $$
begin
    if current_setting('ferry.counting', true) = 'off' then return null; end if;
    if tg_op in ('UPDATE', 'DELETE') and old.family = 'multipart' and old.state = 'completed' then
        perform usage_add(old.user_id, -1, -coalesce(old.size, 0));
    end if;
    if tg_op in ('UPDATE', 'INSERT') and new.family = 'multipart' and new.state = 'completed' then
        perform usage_add(new.user_id, 1, coalesce(new.size, 0));
    end if;
    return null;
end $$;
create trigger uploads_usage after insert or delete or update of state, size on uploads
    for each row execute function uploads_usage();

-- what was there before is counted once by the catalog when it next opens (the same count
-- `recount_usage` makes after a bulk copy)
insert into settings (key, value) values ('usage_recount_due', '\x01'::bytea);

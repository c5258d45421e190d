-- Usage and quotas (issue 22). What an account stores is kept in counters on its row, moved
-- by triggers on every table that holds its items or its holds, so reading usage costs the
-- same at any size and no write path can forget it.
alter table users add column quota_bytes integer;            -- null: no quota
alter table users add column held_bytes integer not null default 0;   -- distinct content held
alter table users add column media_items integer not null default 0;  -- live items, every family
alter table users add column logical_bytes integer not null default 0; -- their sizes, each counted

-- holds: each distinct content an account holds, once
create trigger holds_usage_insert after insert on holds begin
    update users set held_bytes = held_bytes + (select size from blobs where sha256 = new.sha256)
    where id = new.user_id;
end;
create trigger holds_usage_delete after delete on holds begin
    update users set held_bytes = held_bytes - (select size from blobs where sha256 = old.sha256)
    where id = old.user_id;
end;

-- device media: live while not deleted
create trigger media_usage_insert after insert on media when not new.is_deleted begin
    update users set media_items = media_items + 1, logical_bytes = logical_bytes + new.size
    where id = (select user_id from volumes where id = new.volume_id);
end;
create trigger media_usage_update after update of is_deleted, size on media begin
    update users set
        media_items = media_items - (case when old.is_deleted then 0 else 1 end)
                                  + (case when new.is_deleted then 0 else 1 end),
        logical_bytes = logical_bytes - (case when old.is_deleted then 0 else old.size end)
                                      + (case when new.is_deleted then 0 else new.size end)
    where id = (select user_id from volumes where id = new.volume_id);
end;
create trigger media_usage_delete after delete on media when not old.is_deleted begin
    update users set media_items = media_items - 1, logical_bytes = logical_bytes - old.size
    where id = (select user_id from volumes where id = old.volume_id);
end;

-- library files: live while they exist
create trigger files_usage_insert after insert on files begin
    update users set media_items = media_items + 1, logical_bytes = logical_bytes + new.size where id = new.user_id;
end;
create trigger files_usage_delete after delete on files begin
    update users set media_items = media_items - 1, logical_bytes = logical_bytes - old.size where id = old.user_id;
end;

-- gallery events: live while not deleted and holding content (a harvested event is not, until pulled)
create trigger events_usage_insert after insert on events when not new.is_deleted and new.sha256 is not null begin
    update users set media_items = media_items + 1, logical_bytes = logical_bytes + new.size where id = new.user_id;
end;
create trigger events_usage_update after update of is_deleted, sha256, size on events begin
    update users set
        media_items = media_items - (case when old.is_deleted or old.sha256 is null then 0 else 1 end)
                                  + (case when new.is_deleted or new.sha256 is null then 0 else 1 end),
        logical_bytes = logical_bytes - (case when old.is_deleted or old.sha256 is null then 0 else old.size end)
                                      + (case when new.is_deleted or new.sha256 is null then 0 else new.size end)
    where id = new.user_id;
end;
create trigger events_usage_delete after delete on events when not old.is_deleted and old.sha256 is not null begin
    update users set media_items = media_items - 1, logical_bytes = logical_bytes - old.size where id = old.user_id;
end;

-- multipart-family files: live once completed
create trigger uploads_usage_insert after insert on uploads
when new.family = 'multipart' and new.state = 'completed' begin
    update users set media_items = media_items + 1, logical_bytes = logical_bytes + coalesce(new.size, 0)
    where id = new.user_id;
end;
create trigger uploads_usage_update after update of state, size on uploads when new.family = 'multipart' begin
    update users set
        media_items = media_items - (case when old.state = 'completed' then 1 else 0 end)
                                  + (case when new.state = 'completed' then 1 else 0 end),
        logical_bytes = logical_bytes - (case when old.state = 'completed' then coalesce(old.size, 0) else 0 end)
                                      + (case when new.state = 'completed' then coalesce(new.size, 0) else 0 end)
    where id = new.user_id;
end;
create trigger uploads_usage_delete after delete on uploads
when old.family = 'multipart' and old.state = 'completed' begin
    update users set media_items = media_items - 1, logical_bytes = logical_bytes - coalesce(old.size, 0)
    where id = old.user_id;
end;

-- what was there before is counted once by the catalog when it next opens (the same count
-- `recount_usage` makes after a bulk copy)
insert into settings (key, value) values ('usage_recount_due', x'01');

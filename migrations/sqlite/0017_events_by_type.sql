-- A page of one media type (`events?media_type=video`) walks this index in the page's order
-- and stops after the page (issue 19): with `events_listing` alone it read every live event
-- of the device until the page was full, a table lookup each, when the type is rare.
create index events_by_type on events(device_id, is_deleted, media_type, created_ms desc, id desc);

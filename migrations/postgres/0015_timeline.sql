-- The timeline (issue 25): each family's live items of an account, newest first, straight from
-- an index, so a page of the web gallery reads about a page of rows whatever the library's size.
create index events_timeline on events (user_id, is_deleted, created_ms desc, id desc);
create index files_timeline on files (user_id, created_ms desc, id desc);
create index media_timeline on media (volume_id, is_deleted, created_ms desc);
create index uploads_timeline on uploads (user_id, created_ms desc) where family = 'multipart' and state = 'completed';

-- A device multipart start looks for the caller's open upload of the same content to resume
-- it (API.md §5): one lookup per large file started, by account and content.
create index uploads_open_by_content on uploads(user_id, file_hash) where state = 'open';

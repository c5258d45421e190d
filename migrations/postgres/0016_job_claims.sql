-- A claim walks this index in claim order for one kind and stops at the first job it may
-- take (issue 28): a backlog of thousands of pending media jobs no longer makes every claim
-- read and sort all of them.
create index jobs_claim on jobs(kind, status, run_after_ms, id);

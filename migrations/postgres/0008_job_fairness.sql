-- Jobs run concurrently, a few workers per kind, and fairly between accounts (issue 18).

-- The account a job works for: a claim skips the jobs of an account that already has its
-- share of a kind's workers, so one account's slow imports never hold another's. Null for
-- work that belongs to no account (processing shared content).
alter table jobs add column owner_id bigint;
-- A stable code for a failure callers act on (a pull whose file the device no longer has),
-- beside the human `last_error`.
alter table jobs add column failure_code text;
create index jobs_running_by_owner on jobs(kind, owner_id, status);

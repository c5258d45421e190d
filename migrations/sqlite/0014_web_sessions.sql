-- The web gallery's sign-in (issue 25): one-time sign-in links an admin hands out, and the
-- browser sessions they (or an API token typed into the sign-in form) open. Both are stored
-- only as the SHA-256 of their secret, like tokens. Removing a user removes both.
create table web_links (
    secret_hash text primary key,
    user_id     integer not null references users(id) on delete cascade,
    expires_ms  integer not null,
    used_ms     integer,                     -- set once: a link opens one session
    created_ms  integer not null
);

create table web_sessions (
    id          integer primary key autoincrement,
    user_id     integer not null references users(id) on delete cascade,
    secret_hash text not null unique,
    scopes      text not null,               -- a link grants read,upload,delete; a token its own
    via         text not null check (via in ('link', 'token')),
    -- signed in with this token: revoking (or removing) it ends the session too
    token_id    integer references tokens(id) on delete cascade,
    expires_ms  integer not null,
    revoked_ms  integer,                     -- signed out or revoked: null while live
    created_ms  integer not null
);
create index web_sessions_by_user on web_sessions (user_id);

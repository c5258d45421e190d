//! The web gallery's sign-in: one-time links and the browser sessions they open. Secrets are
//! stored as their SHA-256 only (like tokens); expiry and revocation are decided in the
//! queries, so a stale row can never sign anyone in.

use async_trait::async_trait;

use super::db::Exec;
use super::rows::{self, USER, WEB_SESSION};
use super::*;
use crate::clock::now_ms;
use crate::domain::{ScopeSet, TokenId, UserId, WebSessionId};

/// A session about to be opened.
pub struct NewWebSession<'a> {
    pub secret_hash: &'a str,
    pub scopes: ScopeSet,
    /// Signed in with this API token (else with a link): the session lives only as long as
    /// the token does.
    pub token: Option<TokenId>,
    pub expires_ms: i64,
}

impl NewWebSession<'_> {
    fn via(&self) -> &'static str {
        if self.token.is_some() { "token" } else { "link" }
    }
}

#[async_trait]
pub trait WebSessions: Send + Sync {
    /// Records a one-time sign-in link for `user`, good until `expires_ms`.
    async fn create_web_link(&self, user: UserId, secret_hash: &str, expires_ms: i64) -> CatalogResult<()>;
    /// Uses the link with this hash, if it is unused and unexpired, and opens `session` for
    /// its user, in one transaction: a link opens at most one session, however often it is
    /// sent. `None` when the link is unknown, used or expired.
    async fn redeem_web_link(&self, link_hash: &str, session: NewWebSession<'_>) -> CatalogResult<Option<WebSession>>;
    /// The name of the user an unused, unexpired link signs in (the page asks before it is spent).
    async fn web_link_user(&self, link_hash: &str) -> CatalogResult<Option<String>>;
    /// Opens a session for `user` (signed in with one of their API tokens).
    async fn open_web_session(&self, user: UserId, session: NewWebSession<'_>) -> CatalogResult<WebSession>;
    /// The live (unexpired, unrevoked) session with this secret hash and its user, in one query.
    async fn web_session_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(WebSession, User)>>;
    /// Live sessions, of one user or all, oldest first.
    async fn list_web_sessions(&self, user: Option<UserId>) -> CatalogResult<Vec<WebSession>>;
    /// Ends a session (sign-out or revocation); ending it twice keeps the first time.
    async fn revoke_web_session(&self, id: WebSessionId) -> CatalogResult<WebSession>;
}

const INSERT_SESSION: &str =
    "insert into web_sessions (user_id, secret_hash, scopes, via, token_id, expires_ms, created_ms)
     values ($1, $2, $3, $4, $5, $6, $7) returning id";

impl SqlCatalog {
    async fn web_session(&self, id: i64) -> CatalogResult<WebSession> {
        let sql = format!("select {WEB_SESSION} from web_sessions w where w.id = $1");
        let row = self.db.read().await?.opt(&sql, params![id]).await?;
        row.map(|r| rows::web_session(&r, 0))
            .transpose()?
            .ok_or_else(|| CatalogError::NotFound(format!("web session {id}")))
    }
}

#[async_trait]
impl WebSessions for SqlCatalog {
    async fn create_web_link(&self, user: UserId, secret_hash: &str, expires_ms: i64) -> CatalogResult<()> {
        let sql = "insert into web_links (secret_hash, user_id, expires_ms, created_ms) values ($1, $2, $3, $4)";
        let mut tx = self.db.begin().await?;
        tx.exec(sql, params![secret_hash, user.0, expires_ms, now_ms()]).await?;
        tx.commit().await
    }

    async fn redeem_web_link(&self, link_hash: &str, session: NewWebSession<'_>) -> CatalogResult<Option<WebSession>> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let used = "update web_links set used_ms = $1 where secret_hash = $2 and used_ms is null and expires_ms > $1
                    returning user_id";
        let Some(row) = tx.opt(used, params![now, link_hash]).await? else { return Ok(None) };
        let user: i64 = row.get(0)?;
        let token = session.token.map(|t| t.0);
        let values =
            params![user, session.secret_hash, session.scopes.to_list(), session.via(), token, session.expires_ms, now];
        let id: i64 = tx.one(INSERT_SESSION, values).await?.get(0)?;
        tx.commit().await?;
        self.web_session(id).await.map(Some)
    }

    async fn web_link_user(&self, link_hash: &str) -> CatalogResult<Option<String>> {
        let sql = "select u.name from web_links l join users u on u.id = l.user_id
                   where l.secret_hash = $1 and l.used_ms is null and l.expires_ms > $2";
        let row = self.db.read().await?.opt(sql, params![link_hash, now_ms()]).await?;
        row.map(|r| r.get(0)).transpose()
    }

    async fn open_web_session(&self, user: UserId, session: NewWebSession<'_>) -> CatalogResult<WebSession> {
        let token = session.token.map(|t| t.0);
        let values = params![
            user.0,
            session.secret_hash,
            session.scopes.to_list(),
            session.via(),
            token,
            session.expires_ms,
            now_ms()
        ];
        let id = self
            .write_one(INSERT_SESSION, values, |r| r.get::<i64>(0))
            .await?
            .ok_or_else(|| CatalogError::Schema("no id for the new web session".into()))?;
        self.web_session(id).await
    }

    async fn web_session_by_hash(&self, secret_hash: &str) -> CatalogResult<Option<(WebSession, User)>> {
        let sql = format!(
            "select {WEB_SESSION}, {USER} from web_sessions w join users u on u.id = w.user_id
             where w.secret_hash = $1 and w.revoked_ms is null and w.expires_ms > $2
               and (w.token_id is null or exists (select 1 from tokens t where t.id = w.token_id and t.revoked_ms is null))"
        );
        let row = self.db.read().await?.opt(&sql, params![secret_hash, now_ms()]).await?;
        row.map(|r| Ok((rows::web_session(&r, 0)?, rows::user(&r, rows::WEB_SESSION_COLUMNS)?))).transpose()
    }

    async fn list_web_sessions(&self, user: Option<UserId>) -> CatalogResult<Vec<WebSession>> {
        let sql = format!(
            "select {WEB_SESSION} from web_sessions w
             where w.revoked_ms is null and w.expires_ms > $1 and ($2 = 0 or w.user_id = $2) order by w.id"
        );
        let rows = self.db.read().await?.rows(&sql, params![now_ms(), user.map_or(0, |u| u.0)]).await?;
        rows.iter().map(|r| rows::web_session(r, 0)).collect()
    }

    async fn revoke_web_session(&self, id: WebSessionId) -> CatalogResult<WebSession> {
        let sql = "update web_sessions set revoked_ms = coalesce(revoked_ms, $1) where id = $2 returning id";
        self.write_one(sql, params![now_ms(), id.0], |r| r.get::<i64>(0))
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("web session {id}")))?;
        self.web_session(id.0).await
    }
}

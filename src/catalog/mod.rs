//! The catalog: every piece of state Ferry keeps besides blob bytes — identities, blobs and
//! the holds accounts have on them, media items of every family, uploads in flight, jobs.
//!
//! The contract is a set of narrow traits, one per aggregate ([`Identities`], [`Blobs`],
//! [`Lifecycle`], [`MediaItems`], [`Uploads`], [`TusUploads`], [`Library`], [`Gallery`],
//! [`MediaResults`], [`JobQueue`], [`Targets`], [`Settings`], [`Usage`], [`WebSessions`],
//! [`Timeline`]); [`Catalog`] is their sum. Callers take the narrowest they need: a service
//! of one aggregate holds its trait (the gallery events service a `Gallery`, the job runner a
//! `JobQueue`, credential resolution `Identities + WebSessions`); what spans many — the ingest
//! pipeline, tus uploads, the consistency check and maintenance, the application that builds
//! the services, HTTP handlers through the shared state — holds the sum. [`SqlCatalog`]
//! implements all of them once, in one SQL text for both backends (`db`): the embedded SQLite
//! file, or PostgreSQL shared by replicas. What differs per backend lives in `db` (drivers,
//! placeholders, list parameters) and `section` (the locks).
//! Both pass the same conformance suite in `tests/api`.
//!
//! Implementations see no HTTP types and no blob bytes: where bytes and rows must change
//! together (committing or collecting a blob) the caller passes the byte step in as a
//! callback that runs inside the catalog's critical section for that blob.

/// Builds a statement's parameter list, checking each value (`db::IntoValue`): `params![a,
/// b]`, inside a function that returns `CatalogResult`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::catalog::db::IntoValue::into_value($value)?),*]
    };
}

mod blobs;
pub mod db;
mod gallery;
mod identities;
mod intents;
mod jobs;
mod library;
mod lifecycle;
mod media;
mod media_results;
pub mod migrate;
mod model;
mod open;
mod removal;
mod rows;
mod section;
mod settings;
mod targets;
mod timeline;
mod tus;
mod upload_rows;
mod uploads;
mod usage;
mod web;

use futures_util::future::BoxFuture;

pub use blobs::Blobs;
pub use gallery::Gallery;
pub use identities::Identities;
pub use jobs::{ClaimScope, JobQueue, MAX_ATTEMPTS};
pub use library::Library;
pub use lifecycle::{Collection, HoldCheck, HoldLifetimes, Lifecycle};
pub use media::MediaItems;
pub use media_results::MediaResults;
pub use model::*;
pub use removal::{InFlight, RemovalReport, Removals, Removed};
pub use settings::{SIGNING_SECRET, Settings};
pub use targets::Targets;
pub use timeline::{ItemKind, Timeline, TimelineItem, TimelineQuery};
pub use tus::TusUploads;
pub use uploads::Uploads;
pub use usage::{AccountUsage, ServerUsage, Usage};
pub use web::{NewWebSession, WebSessions};

use crate::domain::Sha256Hex;

/// Errors of the catalog layer (no driver's type: the backends map theirs here).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule refused the write; the text names what already exists.
    #[error("{0}")]
    Conflict(String),
    /// A unique constraint refused a write (mapped to a `Conflict` with a message people
    /// can act on where the catalog knows which rule it was).
    #[error("already exists: {0}")]
    Unique(String),
    /// The byte step passed into a catalog transaction failed; nothing was recorded.
    #[error("{0}")]
    Step(BoxError),
    /// The write belongs to something that has finished or gone meanwhile (a session
    /// finished while a file was streaming into it); nothing was recorded.
    #[error("{0}")]
    Gone(String),
    /// Holding the content would take the account over its quota; nothing was recorded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The catalog's storage is full; nothing was recorded.
    #[error("the catalog has no space left: {0}")]
    Full(String),
    /// The database cannot be reached (down, restarting, out of connections); worth retrying.
    #[error("the catalog is unavailable: {0}")]
    Unavailable(String),
    /// A value the catalog's columns cannot hold (a caller let it through unchecked).
    #[error("{0}")]
    OutOfRange(String),
    #[error("catalog schema: {0}")]
    Schema(String),
    #[error("catalog backend: {0}")]
    Backend(String),
}

impl CatalogError {
    /// A uniqueness violation as a conflict that says what exists.
    pub(crate) fn on_unique(self, message: impl FnOnce() -> String) -> Self {
        match self {
            CatalogError::Unique(_) => CatalogError::Conflict(message()),
            other => other,
        }
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type CatalogResult<T> = Result<T, CatalogError>;

/// A step on blob bytes run inside a catalog critical section (see module docs).
pub type BlobStep = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// Removes the stored bytes of a blob, inside the catalog's critical section for it (a sweep
/// may call it for several blobs).
pub type ByteDeleter = std::sync::Arc<dyn Fn(Sha256Hex) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// The whole catalog: every aggregate's trait. Implementations MUST make every method
/// atomic (all of its writes or none), MUST serialise [`Blobs::commit_blob`] and
/// [`Lifecycle::collect_blob`] for the same SHA-256 (so collection never deletes bytes a commit
/// has just relied on), and MUST answer batch methods with a bounded number of queries, not
/// one per item.
pub trait Catalog:
    Settings
    + Identities
    + Blobs
    + Lifecycle
    + MediaItems
    + Uploads
    + TusUploads
    + Library
    + Gallery
    + MediaResults
    + JobQueue
    + Targets
    + Usage
    + Removals
    + WebSessions
    + Timeline
    + Send
    + Sync
    + 'static
{
}

impl<T> Catalog for T where
    T: Settings
        + Identities
        + Blobs
        + Lifecycle
        + MediaItems
        + Uploads
        + TusUploads
        + Library
        + Gallery
        + MediaResults
        + JobQueue
        + Targets
        + Usage
        + Removals
        + WebSessions
        + Timeline
        + Send
        + Sync
        + 'static
{
}

/// The catalog on a SQL database, SQLite or PostgreSQL (see the module docs).
pub struct SqlCatalog {
    db: db::Db,
    /// SQLite's blob critical section (see `section`); unused on PostgreSQL.
    placement: tokio::sync::RwLock<()>,
}

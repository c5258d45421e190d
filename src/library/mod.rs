//! Library files as a service: the one place a file of a user's library (the upload-session
//! family's folders) is created from received bytes — a session upload, a remote import, a
//! blob import, a watch folder, a tus upload, the web page — and the one place its title and
//! content type are decided.

mod remote_import;

pub use remote_import::{RemoteFetch, RemoteImports};

use std::sync::Arc;

use crate::catalog::{CatalogError, Library, LibraryFile, NewLibraryFile};
use crate::domain::UserId;
use crate::ingest::{Ingest, IngestError, Received};
use crate::media::sniff;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The session was finished while the file was arriving (the finish did not list it).
    #[error("{0}")]
    SessionFinished(String),
    /// A watched file recorded before (a run that died before moving it recorded it).
    #[error("{0}")]
    Recorded(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl From<CatalogError> for LibraryError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Gone(why) => LibraryError::SessionFinished(why),
            CatalogError::Conflict(why) => LibraryError::Recorded(why),
            other => LibraryError::Ingest(other.into()),
        }
    }
}

/// Where a file goes in the library.
#[derive(Debug, Clone)]
pub enum Folder {
    /// A folder already looked up (a session's).
    Id(i64),
    /// A folder key of the user's, created on first use.
    Key(String),
}

/// A new library file's description; what it leaves out is decided from the bytes.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub user: UserId,
    pub folder: Folder,
    /// Else the file name, else the content's SHA-256.
    pub title: Option<String>,
    pub file_name: Option<String>,
    /// Used unless it says nothing (`application/octet-stream`); else sniffed.
    pub content_type: Option<String>,
    pub session: Option<String>,
    pub job: Option<i64>,
    pub watch_key: Option<String>,
}

impl NewFile {
    pub fn in_folder(user: UserId, folder: Folder) -> Self {
        Self {
            user,
            folder,
            title: None,
            file_name: None,
            content_type: None,
            session: None,
            job: None,
            watch_key: None,
        }
    }
}

/// The library files service.
#[derive(Clone)]
pub struct LibraryFiles {
    catalog: Arc<dyn Library>,
    ingest: Ingest,
}

impl LibraryFiles {
    pub fn new(catalog: Arc<dyn Library>, ingest: Ingest) -> Self {
        Self { catalog, ingest }
    }

    /// A file of the user's library.
    pub async fn get(&self, user: UserId, file_id: &str) -> Result<Option<LibraryFile>, LibraryError> {
        Ok(self.catalog.file(user, file_id).await?)
    }

    /// Deletes a file of the library (of `user` when given); its bytes follow the retention
    /// rule of every delete. `false` when there is no such file.
    pub async fn delete(&self, user: Option<UserId>, file_id: &str) -> Result<bool, LibraryError> {
        Ok(self.catalog.delete_file(user, file_id).await?)
    }

    /// The file a remote import filed, once it has.
    pub async fn of_import(&self, job_id: i64) -> Result<Option<LibraryFile>, LibraryError> {
        Ok(self.catalog.file_of_job(job_id).await?)
    }

    /// Commits the bytes for the user and files them.
    pub async fn add(&self, new: NewFile, received: Received) -> Result<LibraryFile, LibraryError> {
        let folder_id = match &new.folder {
            Folder::Id(id) => *id,
            Folder::Key(key) => self.catalog.folder(new.user, key).await?.id,
        };
        let content_type = content_type(new.content_type.as_deref(), &received.head, new.file_name.as_deref());
        let ingested = self.ingest.commit(received, new.user).await?;
        let title = [new.title, new.file_name]
            .into_iter()
            .flatten()
            .find(|t| !t.trim().is_empty())
            .unwrap_or_else(|| ingested.blob.sha256.to_string());
        let file = NewLibraryFile {
            user_id: new.user,
            folder_id,
            session_ulid: new.session,
            job_id: new.job,
            watch_key: new.watch_key,
            title,
            blob: ingested.blob,
            content_type,
        };
        Ok(self.catalog.add_file(&file).await?)
    }
}

/// The declared content type unless it says nothing; else what the bytes (or the name) are.
fn content_type(declared: Option<&str>, head: &[u8], name: Option<&str>) -> String {
    match declared.map(str::trim).filter(|t| !t.is_empty() && *t != "application/octet-stream") {
        Some(declared) => declared.to_owned(),
        None => sniff(head, name).content_type,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_declared_type_wins_unless_it_says_nothing() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        assert_eq!(super::content_type(Some("image/x-mine"), &png, None), "image/x-mine");
        assert_eq!(super::content_type(Some("application/octet-stream"), &png, None), "image/png");
        assert_eq!(super::content_type(None, b"", Some("a.mov")), "video/quicktime");
    }
}

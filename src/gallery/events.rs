//! Gallery events as a service: the one place an event is created from received bytes (the
//! family's form upload and signed PUT, a watched `incoming/` folder, a tus upload, the web
//! page), given a thumbnail, or given the bytes a pull fetched. Media type and content type
//! are decided here, the same way for every path.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::pages::{PageCounts, PageKey, PageMemo};
use crate::catalog::{CatalogError, Device, Event, Gallery, MediaInfo, NewEvent, TypeStats};
use crate::clock::now_ms;
use crate::domain::{DeviceId, MediaType, ParseError, UserId};
use crate::ingest::{Ingest, IngestError, Received};
use crate::media::sniff;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    InvalidMediaType(ParseError),
    /// The event (id, watch key) exists already.
    #[error("{0}")]
    Exists(String),
    #[error("no event {0}")]
    NoSuchEvent(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl From<CatalogError> for EventError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Conflict(why) => EventError::Exists(why),
            other => EventError::Ingest(other.into()),
        }
    }
}

/// A new event's description; what it leaves out is decided from the bytes.
#[derive(Debug, Clone, Default)]
pub struct NewGalleryEvent {
    /// A fixed id (an `upload-url` names its event up front); else a new one.
    pub id: Option<String>,
    pub name: String,
    /// The media type the client declared; checked against the family's list.
    pub media_type: Option<String>,
    /// The content type the client declared (a form part's, a PUT's header).
    pub content_type: Option<String>,
    /// The client's file name, when it differs from `name` (sniffing by extension).
    pub file_name: Option<String>,
    pub metadata: Option<Value>,
    /// A watched file's identity, so a restart never records it twice.
    pub watch_key: Option<String>,
}

/// The gallery events service.
#[derive(Clone)]
pub struct GalleryEvents {
    catalog: Arc<dyn Gallery>,
    ingest: Ingest,
    /// Pages kept while the catalog is unchanged (`None`: off, `gallery_page_cache` 0).
    pages: Option<Arc<PageMemo>>,
    page_counts: Arc<PageCounts>,
}

pub fn new_event_id() -> String {
    format!("evt_{}", ulid::Ulid::new())
}

impl GalleryEvents {
    /// With up to `page_cache` bytes of pages kept ready (see `pages`).
    pub fn new(catalog: Arc<dyn Gallery>, ingest: Ingest, page_cache: u64) -> Self {
        let pages = PageMemo::with_budget(page_cache).map(Arc::new);
        Self { catalog, ingest, pages, page_counts: Default::default() }
    }

    /// Commits the event's file (and thumbnail) for the device's owner and records the event.
    /// Refused input (a bad media type) keeps nothing: the staged copies go with them.
    pub async fn create(
        &self,
        device: &Device,
        new: NewGalleryEvent,
        file: Received,
        thumbnail: Option<Received>,
    ) -> Result<Event, EventError> {
        let (media_type, content_type) = kinds(&new, &file.head)?;
        let user = device.user_id;
        let file = self.ingest.commit(file, user).await?;
        let thumbnail = match thumbnail {
            Some(received) => Some(self.ingest.commit_unheld(received).await?.blob),
            None => None,
        };
        let event = NewEvent {
            id: new.id.unwrap_or_else(new_event_id),
            user_id: user,
            device_id: device.device_id,
            name: new.name,
            media_type,
            content_type,
            size: file.blob.size,
            blob: Some(file.blob),
            thumbnail,
            metadata: new.metadata,
            source_name: None,
            watch_key: new.watch_key,
            created_ms: now_ms(),
        };
        Ok(self.catalog.add_event(&event).await?)
    }

    /// Gives an event its thumbnail (a client's: it wins over a generated one).
    pub async fn attach_thumbnail(
        &self,
        device: &Device,
        event_id: &str,
        thumbnail: Received,
    ) -> Result<(), EventError> {
        let thumbnail = self.ingest.commit_unheld(thumbnail).await?;
        if !self.catalog.set_event_thumbnail(device.device_id, event_id, &thumbnail.blob).await? {
            return Err(EventError::NoSuchEvent(event_id.to_owned()));
        }
        Ok(())
    }

    /// Gives a harvested event the bytes a pull fetched (`name` helps sniffing).
    pub async fn fill(&self, device: &Device, event_id: &str, name: &str, file: Received) -> Result<(), EventError> {
        let content_type = sniff(&file.head, Some(name)).content_type;
        let file = self.ingest.commit(file, device.user_id).await?;
        if !self.catalog.set_event_content(device.device_id, event_id, &file.blob, &content_type).await? {
            return Err(EventError::NoSuchEvent(event_id.to_owned()));
        }
        Ok(())
    }

    /// A page of the events of the account's device named or numbered `device`, newest first, each
    /// with what media processing learnt; `None` when the account has no such device.
    pub async fn list(
        &self,
        user: UserId,
        device: &str,
        media_type: Option<MediaType>,
        limit: u32,
        offset: u64,
    ) -> Result<Option<Vec<(Event, Option<MediaInfo>)>>, EventError> {
        Ok(self.catalog.device_events(user, device, media_type, limit, offset).await?)
    }

    /// The page [`GalleryEvents::list`] reads, as `render` writes it; sent again from memory
    /// while the catalog has not changed since it was read (see `pages`).
    pub async fn page(
        &self,
        key: PageKey,
        render: impl FnOnce(&[(Event, Option<MediaInfo>)]) -> Vec<u8>,
    ) -> Result<Option<Bytes>, EventError> {
        // the generation is taken before the page is read: whatever the page then reads is at
        // least that new, so it is never kept past a change it missed
        // (a generation that cannot be told only means the page is read afresh)
        let kept = match &self.pages {
            Some(memo) => self.catalog.generation().await.ok().flatten().map(|generation| (memo, generation)),
            None => None,
        };
        if let Some(page) = kept.and_then(|(memo, generation)| memo.get(generation, &key)) {
            self.page_counts.count(true);
            return Ok(Some(page));
        }
        let Some(events) = self.list(key.user, &key.device, key.media_type, key.limit, key.offset).await? else {
            return Ok(None);
        };
        self.page_counts.count(false);
        let mut page = render(&events);
        // kept pages hold their allocation: not the spare room a growing buffer left
        page.shrink_to_fit();
        let page = Bytes::from(page);
        if let Some((memo, generation)) = kept {
            memo.keep(generation, key, page.clone());
        }
        Ok(Some(page))
    }

    /// Pages answered since the start: (sent from memory, read from the catalog), and the
    /// bytes kept now.
    pub fn page_totals(&self) -> (u64, u64, usize) {
        let (kept, read) = self.page_counts.totals();
        (kept, read, self.pages.as_ref().map_or(0, |memo| memo.bytes()))
    }

    pub async fn get(&self, device: DeviceId, event_id: &str) -> Result<Option<Event>, EventError> {
        Ok(self.catalog.event(device, event_id).await?)
    }

    /// Counts and bytes of a device's events by media type.
    pub async fn stats(&self, device: DeviceId) -> Result<Vec<TypeStats>, EventError> {
        Ok(self.catalog.event_stats(device).await?)
    }

    /// [`GalleryEvents::stats`] of the account's device named or numbered `device`; `None`
    /// when the account has no such device.
    pub async fn account_stats(&self, user: UserId, device: &str) -> Result<Option<Vec<TypeStats>>, EventError> {
        Ok(self.catalog.account_device_stats(user, device).await?)
    }

    /// Soft-deletes an event.
    pub async fn delete(&self, device: DeviceId, event_id: &str) -> Result<(), EventError> {
        if !self.catalog.delete_event(device, event_id).await? {
            return Err(EventError::NoSuchEvent(event_id.to_owned()));
        }
        Ok(())
    }
}

/// The event's media type and content type: the declared media type when it is one of the
/// family's (else refused), otherwise sniffed from the bytes (then the name's extension, then
/// the declared content type's top level); the declared content type unless it says nothing
/// (`application/octet-stream`), otherwise sniffed.
fn kinds(new: &NewGalleryEvent, head: &[u8]) -> Result<(MediaType, String), EventError> {
    let name = new.file_name.as_deref().unwrap_or(&new.name);
    let sniffed = sniff(head, Some(name));
    let declared = new.content_type.as_deref().filter(|t| !t.is_empty() && *t != "application/octet-stream");
    let from_declared = declared
        .and_then(|t| t.split('/').next())
        .and_then(|top| MediaType::parse(top).ok())
        .filter(|t| matches!(t, MediaType::Image | MediaType::Video | MediaType::Audio));
    let media_type = match new.media_type.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => MediaType::parse(t).map_err(EventError::InvalidMediaType)?,
        None if sniffed.media_type == MediaType::Other => from_declared.unwrap_or(MediaType::Other),
        None => sniffed.media_type,
    };
    let content_type = declared.map(str::to_owned).unwrap_or(sniffed.content_type);
    Ok((media_type, content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];

    #[test]
    fn kinds_follow_the_declared_then_the_bytes() {
        let new = |media: Option<&str>, content: Option<&str>| NewGalleryEvent {
            name: "door".into(),
            media_type: media.map(str::to_owned),
            content_type: content.map(str::to_owned),
            ..NewGalleryEvent::default()
        };
        assert_eq!(kinds(&new(None, None), PNG).unwrap(), (MediaType::Image, "image/png".into()));
        assert_eq!(kinds(&new(Some("video"), None), PNG).unwrap().0, MediaType::Video);
        assert!(matches!(kinds(&new(Some("movie"), None), PNG), Err(EventError::InvalidMediaType(_))));
        let unknown = kinds(&new(None, Some("audio/x-weird")), b"????").unwrap();
        assert_eq!(unknown, (MediaType::Audio, "audio/x-weird".into()), "the declared type helps unknown bytes");
        assert_eq!(kinds(&new(None, Some("application/octet-stream")), PNG).unwrap().1, "image/png");
    }
}

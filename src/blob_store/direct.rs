//! Direct-to-store uploads (S3 direct mode): clients PUT bytes straight to the S3 server with
//! SigV4-presigned URLs, and Ferry verifies the object before recording anything.
//!
//! - A single PUT goes to `staging/direct/<user>/<file_hash>-<size>`: a key derived from what
//!   the registration (`s3_object`) names, so any replica finds it from the request alone.
//!   When the plain SHA-256 is known, `x-amz-checksum-sha256` is bound into the signature and
//!   the store itself refuses other bytes.
//! - A multipart upload is the store's own (parts PUT to presigned `UploadPart` URLs); its
//!   Ferry upload id `<ULID>.<store upload id>` carries everything a replica needs to list,
//!   complete or abort it, so no extra catalog state is kept for it.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use object_store::multipart::{MultipartStore, PartId};
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{ObjectStoreExt, path::Path};

use super::s3::{S3Store, io};
use super::{Sha256Hex, Staged, StoreError};
use crate::domain::UserId;

/// SigV4 presigned URLs live at most a week.
const MAX_TTL: Duration = Duration::from_secs(7 * 86_400);

/// A request a client sends straight to the store: the URL and the headers it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// A multipart upload held by the store; the assembled object becomes staging key
/// `uploads/<ULID>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectMultipart {
    pub ulid: String,
    pub store_id: String,
}

impl DirectMultipart {
    /// The upload id handed to clients and kept in the catalog.
    pub fn upload_id(&self) -> String {
        format!("{}.{}", self.ulid, self.store_id)
    }

    /// Reads an upload id made by [`DirectMultipart::upload_id`]; `None` for Ferry's own ids.
    pub fn parse(upload_id: &str) -> Option<Self> {
        let (ulid, store_id) = upload_id.split_once('.')?;
        (ulid.parse::<ulid::Ulid>().is_ok() && !store_id.is_empty())
            .then(|| Self { ulid: ulid.to_owned(), store_id: store_id.to_owned() })
    }

    pub fn staged_key(&self) -> String {
        format!("uploads/{}", self.ulid)
    }
}

/// A part as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub part_num: u32,
    /// Without quotes; `None` when the store does not list part ETags (s3s-fs).
    pub etag: Option<String>,
    pub size: u64,
}

/// An upload the store assembled: the staging object and the store's ETag of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub staged: Staged,
    /// Without quotes.
    pub etag: Option<String>,
}

/// The ETag S3 gives an object assembled from parts with these (MD5) ETags: the MD5 of
/// their concatenated digests, then `-N`. `None` when an ETag is not an MD5 (other stores,
/// encryption). The MD5 runs over 16 bytes per part, never over upload bytes.
pub fn composite_etag(part_etags: &[&str]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut md5 = Md5::new();
    for etag in part_etags {
        let digest = hex::decode(etag).ok().filter(|d| d.len() == 16)?;
        md5.update(digest);
    }
    Some(format!("{}-{}", hex::encode(md5.finalize()), part_etags.len()))
}

/// What a store that takes bytes straight from clients offers. Implementations MUST make
/// every URL valid only for its method, key, query and bound headers, and only until it expires.
#[async_trait]
pub trait DirectUploads: Send + Sync {
    /// The staging key of `user`'s direct single PUT of a file.
    fn direct_key(&self, user: UserId, file_hash: &Sha256Hex, size: u64) -> String {
        format!("direct/{user}/{file_hash}-{size}")
    }
    /// A PUT of staging object `key` of exactly `size` bytes (`Content-Length` is signed),
    /// bound to the plain SHA-256 `checksum` when given.
    async fn presign_put(
        &self,
        key: &str,
        size: u64,
        checksum: Option<&Sha256Hex>,
        ttl: Duration,
    ) -> Result<Presigned, StoreError>;
    /// The size and ETag (without quotes) of a staging object, `None` when there is none.
    async fn staged_object(&self, key: &str) -> Result<Option<(u64, Option<String>)>, StoreError>;
    /// Copies the client-written staging object `key` into request staging (a key no client
    /// can write) and removes `key`; `None` when there is no such object. What is verified
    /// afterwards is the copy, so a client writing `key` again changes nothing.
    async fn take_over(&self, key: &str) -> Result<Option<Staged>, StoreError>;
    async fn start_multipart(&self) -> Result<DirectMultipart, StoreError>;
    /// A PUT of part `part_num` (from 1) of `upload`, of exactly `size` bytes when given
    /// (`Content-Length` is then signed).
    async fn presign_part(
        &self,
        upload: &DirectMultipart,
        part_num: u32,
        size: Option<u64>,
        ttl: Duration,
    ) -> Result<String, StoreError>;
    /// The parts the store holds, by part number; `None` when the upload is gone.
    async fn list_parts(&self, upload: &DirectMultipart) -> Result<Option<Vec<StoredPart>>, StoreError>;
    /// Assembles parts 1..N (`etags` in order, as the client gave them) into the staging
    /// object `upload.staged_key()` of `size` bytes.
    async fn complete_multipart(
        &self,
        upload: &DirectMultipart,
        etags: &[String],
        size: u64,
    ) -> Result<Assembled, StoreError>;
    /// Drops an unfinished upload and its parts, and the object it was assembled into if
    /// that happened; one that is gone is not an error.
    async fn abort_multipart(&self, upload: &DirectMultipart) -> Result<(), StoreError>;
    /// Multipart uploads the store holds open under staging that were started more than
    /// `older_than` ago, as `(staging key, store upload id)` (`admin check`: a crashed
    /// process's request staging or direct upload); `None` when the server cannot list them
    /// (s3s-fs: ListMultipartUploads is not implemented).
    async fn open_uploads(&self, older_than: Duration) -> Result<Option<Vec<(String, String)>>, StoreError>;
    /// Aborts an open upload [`DirectUploads::open_uploads`] listed.
    async fn abort_open_upload(&self, key: &str, store_id: &str) -> Result<(), StoreError>;
}

impl S3Store {
    async fn presign(
        &self,
        method: Method,
        path: &Path,
        ttl: Duration,
        opts: &SignedUrlOptions,
    ) -> Result<String, StoreError> {
        Ok(self.s3.signed_url_opts(method, path, ttl.min(MAX_TTL), opts).await.map_err(io)?.to_string())
    }

    /// A presigned request binding `signed` headers (see `sigv4`: object_store cannot bind
    /// `Content-Length`).
    fn presign_bound(
        &self,
        method: &str,
        path: &Path,
        query: &[(&str, String)],
        signed: &[(&str, String)],
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let signer = self.sigv4.as_ref().ok_or_else(|| {
            std::io::Error::other("direct mode presigns with s3_access_key_id and s3_secret_access_key; set both")
        })?;
        let now = time::OffsetDateTime::now_utc();
        Ok(signer.presign(method, path.as_ref(), query, signed, ttl.min(MAX_TTL), now))
    }

    fn upload_path(&self, upload: &DirectMultipart) -> Result<Path, StoreError> {
        self.staged_path(&upload.staged_key())
    }
}

#[async_trait]
impl DirectUploads for S3Store {
    async fn presign_put(
        &self,
        key: &str,
        size: u64,
        checksum: Option<&Sha256Hex>,
        ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        // Content-Length is signed (every client sends it for a body of known size, so it is
        // not among the headers the client is told to add); the checksum header is listed
        let mut signed = vec![("content-length", size.to_string())];
        let mut headers = Vec::new();
        if let Some(sha256) = checksum {
            let digest = hex::decode(sha256.as_str()).expect("parsed hashes are hex");
            let value = base64::engine::general_purpose::STANDARD.encode(digest);
            signed.push(("x-amz-checksum-sha256", value.clone()));
            headers.push(("x-amz-checksum-sha256".to_owned(), value));
        }
        let url = self.presign_bound("PUT", &self.staged_path(key)?, &[], &signed, ttl)?;
        Ok(Presigned { url, headers })
    }

    async fn staged_object(&self, key: &str) -> Result<Option<(u64, Option<String>)>, StoreError> {
        match self.s3.head(&self.staged_path(key)?).await {
            Ok(meta) => Ok(Some((meta.size, meta.e_tag.as_deref().map(unquote)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn take_over(&self, key: &str) -> Result<Option<Staged>, StoreError> {
        let from = self.staged_path(key)?;
        let Some((size, _)) = self.staged_object(key).await? else { return Ok(None) };
        let taken = format!("requests/{}", ulid::Ulid::new());
        let to = self.staged_path(&taken)?;
        let copied = if size > self.max_single_copy {
            self.stream_copy(&from, &to).await
        } else {
            self.s3.copy(&from, &to).await.map_err(io)
        };
        match copied {
            Ok(()) => {}
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let copy = self.s3.head(&to).await.map_err(io)?;
        // the client's key is spent: a later PUT to it is swept with unregistered uploads
        let _ = self.s3.delete(&from).await;
        Ok(Some(Staged { key: taken, size: copy.size }))
    }

    async fn start_multipart(&self) -> Result<DirectMultipart, StoreError> {
        let ulid = ulid::Ulid::new().to_string();
        let path = self.staged_path(&format!("uploads/{ulid}"))?;
        let store_id = self.s3.create_multipart(&path).await.map_err(io)?;
        Ok(DirectMultipart { ulid, store_id })
    }

    async fn presign_part(
        &self,
        upload: &DirectMultipart,
        part_num: u32,
        size: Option<u64>,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let query = [("partNumber", part_num.to_string()), ("uploadId", upload.store_id.clone())];
        let signed: Vec<(&str, String)> = size.map(|size| ("content-length", size.to_string())).into_iter().collect();
        self.presign_bound("PUT", &self.upload_path(upload)?, &query, &signed, ttl)
    }

    async fn list_parts(&self, upload: &DirectMultipart) -> Result<Option<Vec<StoredPart>>, StoreError> {
        // object_store has no ListParts call; a presigned GET of the same request does it.
        let opts = SignedUrlOptions::default().with_query([("uploadId", upload.store_id.clone())]);
        let url = self.presign(Method::GET, &self.upload_path(upload)?, Duration::from_secs(60), &opts).await?;
        let response = self.http.get(url).send().await.map_err(std::io::Error::other)?;
        let status = response.status();
        let body = response.text().await.map_err(std::io::Error::other)?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(std::io::Error::other(format!("ListParts answered {status}: {body}")).into());
        }
        if tag(&body, "IsTruncated") == Some("true") {
            return Err(std::io::Error::other("more than 1000 parts").into());
        }
        body.split("<Part>")
            .skip(1)
            .map(|part| {
                let bad = || std::io::Error::other(format!("unreadable ListParts part: {part}"));
                Ok(StoredPart {
                    part_num: tag(part, "PartNumber").and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                    etag: tag(part, "ETag").map(unquote),
                    size: tag(part, "Size").and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                })
            })
            .collect::<Result<Vec<_>, std::io::Error>>()
            .map(Some)
            .map_err(StoreError::from)
    }

    async fn complete_multipart(
        &self,
        upload: &DirectMultipart,
        etags: &[String],
        size: u64,
    ) -> Result<Assembled, StoreError> {
        let ids = etags.iter().map(|e| PartId { content_id: format!("\"{}\"", unquote(e)) }).collect();
        let done = self.s3.complete_multipart(&self.upload_path(upload)?, &upload.store_id, ids).await.map_err(io)?;
        let staged = Staged { key: upload.staged_key(), size };
        Ok(Assembled { staged, etag: done.e_tag.as_deref().map(unquote) })
    }

    async fn abort_multipart(&self, upload: &DirectMultipart) -> Result<(), StoreError> {
        let path = self.upload_path(upload)?;
        match self.s3.abort_multipart(&path, &upload.store_id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(io(e)),
        }
        match self.s3.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn open_uploads(&self, older_than: Duration) -> Result<Option<Vec<(String, String)>>, StoreError> {
        // object_store has no ListMultipartUploads; a presigned GET of the same request does it
        let prefix = format!("{}staging/", self.prefix);
        let opts = SignedUrlOptions::default().with_query([("uploads", ""), ("prefix", prefix.as_str())]);
        let bucket_root = Path::from("");
        let url = self.presign(Method::GET, &bucket_root, Duration::from_secs(60), &opts).await?;
        let response = self.http.get(url).send().await.map_err(std::io::Error::other)?;
        let status = response.status();
        let body = response.text().await.map_err(std::io::Error::other)?;
        if status.as_u16() == 501 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(std::io::Error::other(format!("ListMultipartUploads answered {status}: {body}")).into());
        }
        let now = time::OffsetDateTime::now_utc();
        let mut open = Vec::new();
        for upload in body.split("<Upload>").skip(1) {
            let (Some(key), Some(id)) = (tag(upload, "Key"), tag(upload, "UploadId")) else { continue };
            let Some(key) = key.strip_prefix(&prefix) else { continue };
            let started = tag(upload, "Initiated")
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            let age = started.map(|t| (now - t).unsigned_abs()).unwrap_or(Duration::MAX);
            if age >= older_than {
                open.push((key.to_owned(), id.to_owned()));
            }
        }
        Ok(Some(open))
    }

    async fn abort_open_upload(&self, key: &str, store_id: &str) -> Result<(), StoreError> {
        match self.s3.abort_multipart(&self.staged_path(key)?, &store_id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

/// The text of the first `<name>…</name>` in `xml`.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

/// An ETag without its quotes (raw or XML-escaped).
fn unquote(etag: &str) -> String {
    etag.replace("&quot;", "").replace("&#34;", "").trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_carry_the_store_id() {
        let upload = DirectMultipart { ulid: ulid::Ulid::new().to_string(), store_id: "abc.def-1".into() };
        assert_eq!(DirectMultipart::parse(&upload.upload_id()), Some(upload));
        assert_eq!(DirectMultipart::parse(&ulid::Ulid::new().to_string()), None);
        assert_eq!(DirectMultipart::parse("nope.x"), None);
    }

    #[test]
    fn composite_etags_follow_s3() {
        // two parts whose MD5s are those of "a" and "b"
        let (a, b) = ("0cc175b9c0f1b6a831c399e269772661", "92eb5ffee6ae2fec3ad71c777531578f");
        let composite = composite_etag(&[a, b]).unwrap();
        assert!(composite.ends_with("-2") && composite.len() == 34, "{composite}");
        assert_eq!(composite_etag(&[a, "not-md5"]), None);
    }

    #[test]
    fn list_parts_xml_is_read() {
        let xml = "<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>2</PartNumber>\
                   <ETag>&quot;ab12&quot;</ETag><Size>7</Size></Part></ListPartsResult>";
        assert_eq!(tag(xml, "IsTruncated"), Some("false"));
        let part = xml.split("<Part>").nth(1).unwrap();
        assert_eq!((tag(part, "PartNumber"), tag(part, "ETag").map(unquote)), (Some("2"), Some("ab12".into())));
    }
}

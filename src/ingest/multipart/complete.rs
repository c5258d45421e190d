//! Completing an upload in parts: claim it, check the client's part list against what was
//! received, assemble (Ferry streams its staged parts in order through the pipeline, or the
//! S3 server assembles its own parts and Ferry reads the result back), verify, commit and
//! record — or wait for the completion that holds the claim and give its answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{MultipartUploads, UploadError};
use crate::blob_store::{Assembled, DirectMultipart, DirectUploads, Staged, StoredPart, composite_etag};
use crate::catalog::{BlobRecord, CatalogError, CompletionClaim, Part, Upload};
use crate::domain::chunk_size_for;
use crate::ingest::{Expectation, IngestError, Received};

/// A completion's claim lasts this long unless renewed; a completer renews it while it
/// works, so a dead one's claim runs out this long after its last renewal.
const LEASE: Duration = Duration::from_secs(60);
/// How long a second completion waits for the first one's answer (longer than a lease, so a
/// dead completer's claim is taken over meanwhile).
const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);
/// How long a completion waits for the part writes in flight (a trickling one would hold it
/// for as long as it trickles; its part is missing for this completion anyway).
const PARTS_IN_FLIGHT: Duration = Duration::from_secs(30);

/// Which part sizes a family accepts.
#[derive(Debug, Clone, Copy)]
pub enum PartRule {
    /// Every part but the last has at least this many bytes (S3's 5 MiB rule).
    MinSize(u64),
    /// Each part is exactly its chunk of a file of this size (the device family's plan).
    Planned { file_size: u64 },
}

impl PartRule {
    fn check(self, sizes: &[(u32, u64)]) -> Result<(), UploadError> {
        let last = sizes.len();
        for (i, (num, size)) in sizes.iter().enumerate() {
            match self {
                PartRule::MinSize(min) if i + 1 < last && *size < min => {
                    return Err(UploadError::PartSize(format!(
                        "part {num} has {size} bytes; every part but the last needs {min}"
                    )));
                }
                PartRule::Planned { file_size } => {
                    let chunk = chunk_size_for(file_size);
                    let planned = chunk.min(file_size.saturating_sub(chunk * (u64::from(*num) - 1)));
                    if *size != planned {
                        return Err(UploadError::PartSize(format!(
                            "part {num} has {size} bytes, not its planned {planned}"
                        )));
                    }
                }
                PartRule::MinSize(_) => {}
            }
        }
        Ok(())
    }
}

/// A completion request, already checked for its shape (numbers 1..N, each once, in order).
pub struct Completion<'a> {
    pub upload_id: &'a str,
    /// The client's parts with their ETags (quotes allowed).
    pub parts: &'a [(u32, String)],
    pub rule: PartRule,
    /// What the whole file must be (the device family binds its size and file hash).
    pub expect: Expectation,
    /// Renders the answer stored with the completion (and replayed to repeats) from the
    /// content and the multipart ETag.
    pub answer: &'a (dyn Fn(&BlobRecord, &str) -> Value + Send + Sync),
}

/// A completion's answer: this request's, or the one stored by the request that completed it.
#[derive(Debug, Clone)]
pub struct Completed {
    pub answer: Value,
}

/// Renews a claim while its completion works; stops when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MultipartUploads {
    /// Completes an upload (see the module docs). Repeating a completion, or completing
    /// concurrently on any replica, gives every caller the same answer.
    pub async fn complete(&self, c: Completion<'_>) -> Result<Completed, UploadError> {
        let deadline = Instant::now() + WAIT;
        let (upload, token) = loop {
            match self.catalog.claim_completion(c.upload_id, LEASE).await? {
                CompletionClaim::Claimed { upload, token } => break (upload, token),
                CompletionClaim::Completed(upload) => return Ok(stored_answer(upload)),
                CompletionClaim::Missing => return Err(UploadError::NoSuchUpload),
                CompletionClaim::Busy(_) if Instant::now() >= deadline => return Err(UploadError::Completing),
                CompletionClaim::Busy(_) => tokio::time::sleep(POLL).await,
            }
        };
        let _heartbeat = {
            let (catalog, id, token) = (self.catalog.clone(), upload.upload_id.clone(), token.clone());
            Heartbeat(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    if let Err(e) = catalog.renew_completion(&id, &token, LEASE).await {
                        tracing::warn!(error = %e, upload = %id, "could not renew a completion's claim");
                    }
                }
            }))
        };
        let finished = match (self.store.direct(), DirectMultipart::parse(&upload.upload_id)) {
            (Some(direct), Some(held)) => self.complete_direct(direct, &held, &upload, &c).await,
            _ => self.complete_staged(&upload, &c).await,
        };
        match finished {
            Ok(answer) => Ok(Completed { answer }),
            Err(Outcome::Retryable(err)) => {
                self.catalog.release_completion(&upload.upload_id, &token).await?;
                Err(err)
            }
            Err(Outcome::Final(err)) => {
                // the content can never be right: the upload goes, as an abort would take it
                self.catalog.release_completion(&upload.upload_id, &token).await?;
                if let Some(parts) = self.catalog.delete_upload(&upload.upload_id).await? {
                    self.drop_bytes(&upload.upload_id, parts).await;
                }
                Err(err)
            }
        }
    }

    /// Parts staged by Ferry: streamed in order through the pipeline (the one second pass
    /// over upload bytes DESIGN.md allows), verified, committed.
    async fn complete_staged(&self, upload: &Upload, c: &Completion<'_>) -> Result<Value, Outcome> {
        // parts written in place: the writes in flight end first (a part whose record they
        // forgot is missing below), and none starts until the file is read and linked
        let exclusive = tokio::time::timeout(PARTS_IN_FLIGHT, self.locks.exclusive(&upload.upload_id)).await;
        let Ok(_exclusive) = exclusive else { return Err(Outcome::Retryable(UploadError::Completing)) };
        let stored = self.catalog.parts(&upload.upload_id).await.map_err(retry)?;
        let by_number: HashMap<u32, &Part> = stored.iter().map(|p| (p.part_num, p)).collect();
        let mut ordered = Vec::with_capacity(c.parts.len());
        for (num, etag) in c.parts {
            let found = by_number.get(num).ok_or(Outcome::Retryable(UploadError::MissingPart(*num)))?;
            if unquote(etag) != found.etag {
                let why = format!("part {num}: the ETag does not match the uploaded part");
                return Err(Outcome::Retryable(UploadError::EtagMismatch(why)));
            }
            ordered.push(*found);
        }
        let sizes: Vec<(u32, u64)> = ordered.iter().map(|p| (p.part_num, p.size)).collect();
        let total = self.check_sizes(c.rule, &sizes)?;
        let staged: Vec<Staged> = ordered.iter().map(|p| Staged { key: p.staging_key.clone(), size: p.size }).collect();
        let expect = Expectation { size: Some(total), size_hint: Some(total), max_size: None, ..c.expect.clone() };
        let received = match self.in_place_key(upload, &stored) {
            Some(key) => self
                .hash_in_place(upload, Staged { key, size: total }, &ordered)
                .await
                .and_then(|hashed| self.ingest.accept_in_place(hashed, &expect)),
            None => self.ingest.assemble(&staged, &expect).await,
        };
        let received = match received {
            Ok(received) => received,
            Err(IngestError::HashMismatch(why)) => return Err(Outcome::Final(IngestError::HashMismatch(why).into())),
            Err(other) => return Err(retry(other)),
        };
        let etag = multipart_etag(&ordered);
        let answer = self.record(upload, received, &etag, c).await?;
        self.frontiers.forget(&upload.upload_id);
        // only now, with the completion recorded, may the parts go (a concurrent completion
        // waits on the claim instead of reading them)
        if let Err(e) = self.ingest.discard_staged(&staged).await {
            tracing::warn!(error = %e, upload = %upload.upload_id, "could not remove a completed upload's parts");
        }
        Ok(answer)
    }

    /// Parts held by the S3 server: it assembles them into `staging/uploads/<ULID>`, Ferry
    /// checks the ETags and reads the object back. A completion that finds the object
    /// already assembled (its predecessor died, or the client retries after a wrong ETag)
    /// continues from there.
    async fn complete_direct(
        &self,
        direct: &dyn DirectUploads,
        held: &DirectMultipart,
        upload: &Upload,
        c: &Completion<'_>,
    ) -> Result<Value, Outcome> {
        let etags: Vec<String> = c.parts.iter().map(|(_, etag)| unquote(etag).to_owned()).collect();
        // the object exists once the S3 server assembled the parts: a completion that died
        // after that, or a retry after a wrong ETag, continues from it (a completed upload's
        // part listing is empty or gone, depending on the server)
        let assembled = match direct.staged_object(&held.staged_key()).await.map_err(retry)? {
            Some((size, etag)) => Assembled { staged: Staged { key: held.staged_key(), size }, etag },
            None => {
                let stored = direct.list_parts(held).await.map_err(retry)?;
                let Some(stored) = stored else { return Err(Outcome::Final(UploadError::NoSuchUpload)) };
                let parts = checked_parts(&stored, c.parts)?;
                let sizes: Vec<(u32, u64)> = parts.iter().map(|p| (p.part_num, p.size)).collect();
                let total = self.check_sizes(c.rule, &sizes)?;
                direct.complete_multipart(held, &etags, total).await.map_err(retry)?
            }
        };
        let expected = composite_etag(&etags.iter().map(String::as_str).collect::<Vec<_>>());
        if let (Some(expected), Some(actual)) = (expected, &assembled.etag)
            && actual.ends_with(&format!("-{}", c.parts.len()))
            && *actual != expected
        {
            // the assembled object stays: the client may complete again with the right ETags
            let why = "the part ETags do not match the uploaded parts".to_owned();
            return Err(Outcome::Retryable(UploadError::EtagMismatch(why)));
        }
        if assembled.staged.size > self.max_size {
            return Err(Outcome::Final(UploadError::TooLarge { limit: self.max_size }));
        }
        let expect = Expectation {
            size: Some(assembled.staged.size),
            size_hint: Some(assembled.staged.size),
            max_size: None,
            ..c.expect.clone()
        };
        let received = match self.ingest.verify_staged(assembled.staged, &expect).await {
            Ok(received) => received,
            Err(IngestError::HashMismatch(why)) => return Err(Outcome::Final(IngestError::HashMismatch(why).into())),
            Err(other) => return Err(retry(other)),
        };
        let etag = format!("\"{}-{}\"", received.blob.sha256, c.parts.len());
        self.record(upload, received, &etag, c).await
    }

    /// Every part's size follows the family's rule and the whole is within the limit;
    /// returns the total.
    fn check_sizes(&self, rule: PartRule, sizes: &[(u32, u64)]) -> Result<u64, Outcome> {
        rule.check(sizes).map_err(Outcome::Retryable)?;
        let total = sizes.iter().map(|(_, size)| size).sum();
        if total > self.max_size {
            return Err(Outcome::Retryable(UploadError::TooLarge { limit: self.max_size }));
        }
        Ok(total)
    }

    /// Commits the assembled content and marks the upload completed with its answer. When
    /// the upload changed meanwhile (this completer's claim ran out), the catalog says how:
    /// completed by another completer (its answer is the answer), or aborted (it failed).
    async fn record(
        &self,
        upload: &Upload,
        received: Received,
        etag: &str,
        c: &Completion<'_>,
    ) -> Result<Value, Outcome> {
        let ingested = self.ingest.commit(received, upload.user_id).await.map_err(retry)?;
        let answer = (c.answer)(&ingested.blob, etag);
        match self.catalog.complete_upload(&upload.upload_id, &answer, &ingested.blob).await {
            Ok(()) => Ok(answer),
            Err(CatalogError::Conflict(_)) => match self.catalog.upload(&upload.upload_id).await.map_err(retry)? {
                Some(done) => Ok(stored_answer(done).answer),
                None => Err(Outcome::Final(UploadError::NoSuchUpload)),
            },
            Err(CatalogError::NotFound(_)) => Err(Outcome::Final(UploadError::NoSuchUpload)),
            Err(other) => Err(retry(other)),
        }
    }
}

/// How a claimed completion failed: the upload stays open for another try, or it can never
/// complete and goes.
enum Outcome {
    Retryable(UploadError),
    Final(UploadError),
}

fn retry(err: impl Into<UploadError>) -> Outcome {
    Outcome::Retryable(err.into())
}

fn stored_answer(upload: Upload) -> Completed {
    Completed { answer: upload.result.unwrap_or_else(|| Value::Object(Default::default())) }
}

/// The client's parts as the S3 server holds them: each must be there, with the same ETag
/// where the server lists ETags (some, s3s-fs among them, do not: the assembled object's
/// ETag is checked instead).
fn checked_parts(stored: &[StoredPart], listed: &[(u32, String)]) -> Result<Vec<StoredPart>, Outcome> {
    let mut parts = Vec::with_capacity(listed.len());
    for (num, etag) in listed {
        let found =
            stored.iter().find(|p| p.part_num == *num).ok_or(Outcome::Retryable(UploadError::MissingPart(*num)))?;
        if found.etag.as_deref().is_some_and(|stored| stored != unquote(etag)) {
            let why = format!("part {num}: the ETag does not match the uploaded part");
            return Err(Outcome::Retryable(UploadError::EtagMismatch(why)));
        }
        parts.push(found.clone());
    }
    Ok(parts)
}

/// S3-style multipart ETag of Ferry-staged parts: a digest of the part digests, then `-N`.
fn multipart_etag(parts: &[&Part]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(hex::decode(part.sha256.as_str()).expect("stored hashes are hex"));
    }
    format!("\"{}-{}\"", hex::encode(digest.finalize()), parts.len())
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_rules() {
        let mib = 1024 * 1024;
        assert!(PartRule::MinSize(5 * mib).check(&[(1, 5 * mib), (2, 1)]).is_ok());
        assert!(PartRule::MinSize(5 * mib).check(&[(1, 5 * mib - 1), (2, 5 * mib)]).is_err());
        let file_size = 16 * mib + 1;
        assert!(PartRule::Planned { file_size }.check(&[(1, 8 * mib), (2, 8 * mib), (3, 1)]).is_ok());
        assert!(PartRule::Planned { file_size }.check(&[(1, 8 * mib), (2, 8 * mib), (3, 2)]).is_err());
    }
}

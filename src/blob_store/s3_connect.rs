//! Connecting to an S3-compatible bucket: the `object_store` client (for the blob store and
//! the import buckets), what its errors mean, and the presigner of direct mode's URLs.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, RetryConfig};

use super::StoreError;
use crate::config::S3Config;

/// What S3 servers say when they are out of space (MinIO: 507 `XMinioStorageFull`; others
/// `InsufficientStorage` or a quota). s3s-fs on a full disk answers a bare 500, which cannot be
/// told from any other failure.
const OUT_OF_SPACE: [&str; 4] = ["507 Insufficient Storage", "StorageFull", "InsufficientStorage", "QuotaExceeded"];

/// Whether the client could not reach the server at all (after its retries): somewhere in the
/// error's causes a connection was refused, reset or never answered.
fn unreachable(err: &object_store::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, NotConnected, TimedOut};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | NotConnected)
        {
            return true;
        }
        cause = error.source();
    }
    // object_store's HTTP errors do not expose their causes through `source()`: their debug
    // form names the connection failure (pinned versions; a change shows as a failing outage test)
    let debug = format!("{err:?}");
    ["ConnectError", "kind: Connect,", "ConnectionRefused", "ConnectionReset", "kind: TimedOut"]
        .iter()
        .any(|said| debug.contains(said))
}

/// An S3 failure as a store error; a server out of space becomes `StorageFull`, so the upload
/// answers 507 like a full disk, and one that cannot be reached `NotConnected` (503).
pub(super) fn io(err: object_store::Error) -> StoreError {
    let text = err.to_string();
    if OUT_OF_SPACE.iter().any(|said| text.contains(said)) {
        return StoreError::Io(std::io::Error::new(std::io::ErrorKind::StorageFull, err));
    }
    if unreachable(&err) {
        return StoreError::Io(std::io::Error::new(std::io::ErrorKind::NotConnected, err));
    }
    StoreError::Io(err.into())
}

/// An I/O error of an `object_store` writer (which wraps its S3 failures in `io::Error`), read
/// as the S3 failure it carries.
pub(super) fn io_of_writer(err: std::io::Error) -> StoreError {
    if !err.get_ref().is_some_and(|inner| inner.is::<object_store::Error>()) {
        return StoreError::Io(err);
    }
    let kind = err.kind();
    match err.into_inner().map(|inner| inner.downcast::<object_store::Error>()) {
        Some(Ok(s3)) => io(*s3),
        Some(Err(other)) => StoreError::Io(std::io::Error::new(kind, other)),
        None => StoreError::Io(kind.into()),
    }
}

/// A client for `config`'s bucket, retrying transient failures a few times.
pub fn s3_client(config: &S3Config) -> Result<AmazonS3, StoreError> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_virtual_hosted_style_request(!config.path_style)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        });
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(id) = &config.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &config.secret_access_key {
        builder = builder.with_secret_access_key(&secret.0);
    }
    builder.build().map_err(io)
}

/// The direct-mode presigner for `config`'s bucket (AWS's endpoint for the region when none is set).
pub(super) fn presigner(config: &S3Config) -> Option<super::sigv4::SigV4> {
    Some(super::sigv4::SigV4 {
        endpoint: config.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region)),
        bucket: config.bucket.clone(),
        region: config.region.clone(),
        path_style: config.path_style,
        access_key_id: config.access_key_id.clone()?,
        secret_access_key: config.secret_access_key.clone()?.0,
    })
}

#[cfg(test)]
mod tests {
    use super::io;

    fn failure(text: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: text.to_owned().into() }
    }

    #[test]
    fn a_server_out_of_space_is_a_full_store() {
        let minio = "Server returned non-2xx status code: 507 Insufficient Storage: <Code>XMinioStorageFull</Code>";
        assert!(io(failure(minio)).is_full());
        assert!(io(failure("<Error><Code>InsufficientStorage</Code></Error>")).is_full());
        assert!(!io(failure("Server returned non-2xx status code: 500 Internal Server Error")).is_full());
        assert!(!io(failure("connection refused")).is_full());
    }
}

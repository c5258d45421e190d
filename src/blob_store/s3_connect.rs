//! Connecting to an S3-compatible bucket: the `object_store` client (for the blob store and
//! the import buckets) and the presigner of direct mode's URLs.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, RetryConfig};

use super::StoreError;
use super::s3::io;
use crate::config::S3Config;

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

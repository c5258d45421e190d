//! # Ferry — a code tour
//!
//! Ferry receives media from devices through four wire-compatible API families and keeps
//! it in one content-addressed, deduplicated store. Read in this order:
//!
//! - [`domain`]: parsed values (hashes, ids, paths, ranges, scopes) — no I/O.
//! - [`ingest`]: the one upload pipeline (stream → hash → stage → verify → commit).
//! - [`blob_store`]: where bytes live ([`blob_store::BlobStore`]; local disk or S3-compatible).
//! - [`catalog`]: every other piece of state ([`catalog::Catalog`]; SQLite or PostgreSQL).
//! - [`auth`]: credentials → principal, and the permission table.
//! - [`signing`]: signed URLs for the upload host.
//! - [`jobs`]: the job runner (claims, leases, retries, fairness between accounts) and
//!   maintenance (expiry, sweeps, collection); each job kind's handler lives with its feature.
//! - [`media`]: what stored files are: sniffing, EXIF, thumbnails, ffprobe/ffmpeg for videos.
//! - [`remote`]: SSRF-safe fetching for remote import.
//! - [`redact`]: secrets (URL passwords) out of whatever shows a job.
//! - [`http`]: the router; one module per API family, thin handlers.
//! - [`app`]: building and running the server; [`cli`]: `ferry serve`, `ferry admin …`,
//!   `ferry push` / `ferry pull` (the [`sync_client`], which speaks only the public device API).
//! - [`config`]: layered settings (defaults < ferry.toml < FERRY_* < flags).
//! - [`fuzzing`]: the promises about hostile input that `cargo fuzz` and the corpus replay check.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod backup;
pub mod blob_store;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod fuzzing;
pub mod gallery;
pub mod http;
pub mod import_buckets;
pub mod ingest;
pub mod jobs;
pub mod library;
pub mod media;
pub mod metrics;
pub mod redact;
pub mod remote;
pub mod resumable;
pub mod signing;
pub mod sync_client;
pub mod watch;

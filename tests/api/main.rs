//! Ferry's integration tests: one binary, real servers on random loopback ports, real
//! SQLite and filesystem, the real `ferry` binary where a user would run it.

mod helpers;

mod auth;
mod blob_store_conformance;
mod catalog_conformance;
mod catalog_postgres;
mod cli;
mod conventions;
mod device_client;
mod device_media;
mod device_multipart;
mod device_script;
mod device_upload;
mod direct_s3;
mod direct_s3_safety;
mod family_errors;
mod gallery;
mod gallery_harvest;
mod gallery_pull;
mod imports;
mod ingest;
mod lenient_input;
mod lifecycle;
mod lifecycle_cli;
mod media;
mod metrics;
mod migrate_store;
mod multipart;
mod push_pull;
mod push_resume;
mod replicas;
mod secrets;
mod serving;
mod session_batch;
mod sessions;
mod sizes;
mod storage_safety;
mod sync_proxy;
mod tus;
mod tus_clients;
mod tus_extensions;
mod upload_host;
mod upload_races;
mod usage;
mod watch;

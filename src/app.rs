//! Building and running the server: `Application::build(config)` opens the catalog and the
//! blob store, recovers from any crash, binds the listener (port 0 picks one) and returns;
//! `run_until_stopped` serves until SIGTERM/Ctrl-C, finishing requests in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use tokio::sync::Notify;

use crate::blob_store::{BlobStore, LocalStore, S3Store};
use crate::catalog::Catalog;
use crate::catalog::SqlCatalog;
use crate::config::Config;
use crate::domain::JobKind;
use crate::gallery::{GalleryEvents, GalleryPulls};
use crate::http::{AppServices, AppState, router};
use crate::import_buckets::ImportBuckets;
use crate::ingest::Ingest;
use crate::ingest::multipart::MultipartUploads;
use crate::jobs::{BlobWrites, JobRunner, Registration, StorageLifecycle, consistency, maintenance_tasks};
use crate::library::{LibraryFiles, RemoteImports};
use crate::media::{DeviceHashes, MediaProcessor, RenditionMaker};
use crate::metrics::Metrics;
use crate::remote::RemotePolicy;
use crate::resumable::ResumableUploads;
use crate::signing::Signer;
use crate::watch::WatchFolders;

mod data_dir_lock;
use data_dir_lock::lock_data_dir;
pub use data_dir_lock::try_lock_data_dir;

/// Network jobs mostly wait; one account gets at most `NETWORK_JOBS_PER_ACCOUNT` of them at
/// once, so another account's import starts while the first one's slow server trickles.
const NETWORK_WORKERS: usize = 4;
const NETWORK_JOBS_PER_ACCOUNT: u32 = 2;

/// The catalog, store and services a process works with; shared by `serve` and the admin CLI.
pub struct Services {
    pub config: Arc<Config>,
    pub catalog: Arc<dyn Catalog>,
    pub store: Arc<dyn BlobStore>,
    pub signer: Signer,
    /// The upload pipeline; it wakes the job runner when new content queued its media job.
    pub ingest: Ingest,
    pub uploads: MultipartUploads,
    pub tus: ResumableUploads,
    pub library: LibraryFiles,
    pub events: GalleryEvents,
    pub jobs: JobRunner,
    /// Retention, hold release and collection (also run by `ferry admin collect`).
    pub lifecycle: StorageLifecycle,
    pub remote: Arc<RemotePolicy>,
    pub import_buckets: Arc<ImportBuckets>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Services {
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let catalog = open_catalog(&config.database_url).await?;
        let store = open_store(&config)?;
        consistency::bind_store(catalog.as_ref(), store.as_ref(), &catalog_name(&config.database_url))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let signer = Signer::new(signing_key(&config, catalog.as_ref()).await?);
        let remote = Arc::new(RemotePolicy::parse(&config.remote_allow).context("FERRY_REMOTE_ALLOW")?);
        let import_buckets = Arc::new(ImportBuckets::open(&config).context("cannot open the import buckets")?);
        let config = Arc::new(config);
        let wake = Arc::new(Notify::new());
        let metrics = Arc::new(Metrics::default());
        let ingest = Ingest::new(store.clone(), catalog.clone())
            .waking(wake.clone())
            .counting(metrics.clone())
            .idle_after(config.body_idle_timeout)
            .queuing_renditions(config.transcode.policy != crate::config::TranscodePolicy::Off);
        let uploads = MultipartUploads::new(ingest.clone(), signer.clone(), &config);
        let library = LibraryFiles::new(catalog.clone(), ingest.clone());
        let events = GalleryEvents::new(catalog.clone(), ingest.clone(), config.gallery_page_cache);
        let tus = ResumableUploads::new(ingest.clone(), library.clone(), events.clone(), &config);
        let jobs = JobRunner::new(catalog.clone(), wake.clone(), config.job_interval);
        let lifecycle = StorageLifecycle::new(catalog.clone(), store.clone(), &config);
        let mut services = Self {
            config,
            catalog,
            store,
            signer,
            ingest,
            uploads,
            tus,
            library,
            events,
            jobs,
            lifecycle,
            remote,
            import_buckets,
            metrics,
            wake,
        };
        services.jobs = services.job_runner(BlobWrites::Here);
        Ok(services)
    }

    /// The job runner with every handler and maintenance task, or (beside a server on an
    /// SQLite catalog) without what writes or removes blobs: queued jobs store thumbnails
    /// and imports, so they are left to the server too.
    pub fn job_runner(&self, blob_writes: BlobWrites) -> JobRunner {
        let tasks = maintenance_tasks(
            self.catalog.clone(),
            self.store.clone(),
            self.uploads.clone(),
            vec![self.tus.expiry_task()],
            &self.config,
            blob_writes,
        );
        let runner = JobRunner::new(self.catalog.clone(), self.wake.clone(), self.config.job_interval)
            .counting(self.metrics.clone())
            .maintain(tasks);
        if blob_writes == BlobWrites::LeftToServer {
            return runner;
        }
        let (catalog, config, remote) = (&self.catalog, &self.config, &self.remote);
        let media = MediaProcessor::new(catalog.clone(), self.store.clone(), self.ingest.clone(), config.clone());
        let renditions = RenditionMaker::new(catalog.clone(), self.store.clone(), self.ingest.clone(), config.clone());
        let device_hashes = DeviceHashes::new(catalog.clone(), self.store.clone());
        let imports = RemoteImports::new(self.library.clone(), remote.clone(), config.clone());
        let pulls = GalleryPulls::new(
            catalog.clone(),
            self.ingest.clone(),
            self.events.clone(),
            remote.clone(),
            config.clone(),
        );
        let network = |handler| Registration { handler, workers: NETWORK_WORKERS, per_owner: NETWORK_JOBS_PER_ACCOUNT };
        runner
            .register(
                JobKind::MediaProcess,
                Registration { handler: Arc::new(media), workers: config.media_workers, per_owner: u32::MAX },
            )
            .register(JobKind::RemoteFetch, network(Arc::new(imports)))
            .register(JobKind::GalleryPull, network(Arc::new(pulls)))
            // one transcode at a time, on workers of its own: a long one holds no other kind
            .register(
                JobKind::Transcode,
                Registration { handler: Arc::new(renditions), workers: 1, per_owner: u32::MAX },
            )
            // one at a time: each reads a whole large blob, and uploads come first
            .register(
                JobKind::DeviceHash,
                Registration { handler: Arc::new(device_hashes), workers: 1, per_owner: u32::MAX },
            )
    }

    /// Base of signed URLs the admin CLI hands out: the configured upload or public URL, else
    /// the configured listen address — unless that names no reachable server (port 0, or all
    /// interfaces), which only the running server can resolve.
    pub fn upload_base(&self) -> Result<String, crate::config::NoLinkAddress> {
        self.link_base(self.config.upload_url.clone().or_else(|| self.config.public_url.clone()))
    }

    /// Base of the other links the admin CLI hands out (web sign-in): the public URL, else as
    /// [`Self::upload_base`].
    pub fn public_base(&self) -> Result<String, crate::config::NoLinkAddress> {
        self.link_base(self.config.public_url.clone())
    }

    fn link_base(&self, configured: Option<String>) -> Result<String, crate::config::NoLinkAddress> {
        if let Some(url) = configured {
            return Ok(url.trim_end_matches('/').to_owned());
        }
        let listen = self.config.listen;
        if listen.port() == 0 || listen.ip().is_unspecified() {
            return Err(crate::config::NoLinkAddress(listen));
        }
        Ok(format!("http://{listen}"))
    }
}

/// The S3-compatible store when a bucket is configured, else local disk in the data dir.
fn open_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    if let Some(s3) = &config.s3 {
        // the error names the bucket, never the credentials
        let store = S3Store::open(s3).with_context(|| format!("cannot open the S3 bucket {}", s3.bucket))?;
        return Ok(Arc::new(store));
    }
    let store = LocalStore::open(&config.data_dir)
        .with_context(|| format!("cannot open the blob store in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// The catalog as messages name it: the SQLite file, or PostgreSQL's host and database
/// (never the user's password).
pub fn catalog_name(url: &str) -> String {
    match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Some(path) => path.split('?').next().unwrap_or(path).to_owned(),
        // no query string either: `?password=` is a way to pass the password too
        None => match url.split('?').next().unwrap_or(url).split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest)),
            None => "(the configured database)".to_owned(),
        },
    }
}

/// Whether the catalog is the embedded SQLite file (one server at a time) rather than a
/// database replicas share.
fn is_embedded(url: &str) -> bool {
    url.starts_with("sqlite:")
}

async fn open_catalog(url: &str) -> anyhow::Result<Arc<dyn Catalog>> {
    // The error names the catalog, never the URL's password. Its text already includes its
    // sources: flattened, a chain would say everything twice.
    let catalog = SqlCatalog::open(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the catalog at {}: {e}", catalog_name(url)))?;
    Ok(Arc::new(catalog))
}

async fn signing_key(config: &Config, catalog: &dyn Catalog) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.signing_secret {
        return Ok(secret.0.as_bytes().to_vec());
    }
    let fresh = crate::auth::secrets::generate("").into_bytes();
    Ok(catalog.signing_secret(&fresh).await?)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    watch: WatchFolders,
    /// Held for the life of the server: one server per data directory.
    _data_dir_lock: std::fs::File,
    /// SIGTERM and SIGINT, listened for from the moment the server is built (before it prints
    /// its address), so a stop signal right after start still stops it cleanly.
    stop: StopSignals,
}

type StopSignals = Vec<tokio::signal::unix::Signal>;

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let data_dir_lock = lock_data_dir(&config.data_dir)?;
        let services = Services::open(config).await?;
        recover(&services).await?;
        let listener = TcpListener::bind(services.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", services.config.listen))?;
        let bound = listener.local_addr()?;
        let public_url = match services.config.public_url.clone() {
            Some(url) => url,
            None => {
                let url = crate::config::links_for(bound);
                if bound.ip().is_unspecified() {
                    tracing::warn!(
                        links = %url,
                        "listening on all interfaces without a public URL: links name this machine's address; \
                         set FERRY_PUBLIC_URL (or --public-url) to the address clients use"
                    );
                }
                url
            }
        };
        let upload_url = services.config.upload_url.clone().unwrap_or_else(|| public_url.clone());
        let state = AppState::new(AppServices {
            ingest: services.ingest,
            uploads: services.uploads,
            tus: services.tus,
            events: services.events,
            library: services.library,
            config: services.config,
            catalog: services.catalog,
            store: services.store,
            signer: services.signer,
            principals: Arc::default(),
            jobs: services.jobs,
            lifecycle: services.lifecycle,
            remote: services.remote,
            import_buckets: services.import_buckets,
            metrics: services.metrics,
            public_url,
            upload_url,
        });
        let watch = WatchFolders::new(
            &state.config,
            state.catalog.clone(),
            state.ingest.clone(),
            state.library.clone(),
            state.events.clone(),
        )
        .map_err(anyhow::Error::msg)?;
        use tokio::signal::unix::{SignalKind, signal};
        let stop =
            [SignalKind::terminate(), SignalKind::interrupt()].into_iter().filter_map(|k| signal(k).ok()).collect();
        Ok(Self { listener, state, watch, _data_dir_lock: data_dir_lock, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then stops accepting and lets requests in flight finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // the background work stops with the server, also when this future is dropped
        let background = [
            crate::jobs::AbortOnDrop(tokio::spawn(self.state.jobs.clone().run_forever())),
            crate::jobs::AbortOnDrop(tokio::spawn(self.watch.run_forever())),
            crate::jobs::AbortOnDrop(tokio::spawn(harvest_forever(self.state.clone()))),
        ];
        let header_timeout = self.state.config.header_timeout;
        let app = router(self.state);
        crate::http::serve(self.listener, app, header_timeout, shutdown_signal(self.stop)).await;
        drop(background);
        tracing::info!("stopped");
        Ok(())
    }
}

/// Harvests devices' gallery pull sources every `harvest_interval`.
async fn harvest_forever(state: AppState) {
    loop {
        tokio::time::sleep(state.config.harvest_interval).await;
        let created =
            crate::gallery::harvest_all(state.catalog.as_ref(), &state.remote, state.config.remote_timeout).await;
        match created {
            Ok(n) if n > 0 => tracing::info!(created = n, "harvested gallery events"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "harvest failed"),
        }
    }
}

/// Undo what a crash may have left: request-scoped staging files, and the commits and
/// collections it interrupted (their intents say which bytes). Bytes the catalog knows
/// nothing about are left alone: `ferry admin check` reports them.
async fn recover(services: &Services) -> anyhow::Result<()> {
    let staged = services.store.clean_request_staging().await?;
    let interrupted =
        consistency::sweep_intents(services.catalog.as_ref(), services.store.clone(), Duration::ZERO).await?;
    if staged + interrupted > 0 {
        tracing::info!(staged, interrupted, "removed leftovers of an interrupted run");
    }
    // an embedded catalog has one server (the data dir's lock): no tus PATCH outlived the last
    // one, so its leases need not run out before the clients resume (on PostgreSQL another
    // replica's PATCH may be running)
    if is_embedded(&services.config.database_url) {
        let released = services.catalog.release_all_tus_leases().await?;
        if released > 0 {
            tracing::info!(released, "released the leases of tus uploads an interrupted run held");
        }
    }
    Ok(())
}

async fn shutdown_signal(mut signals: StopSignals) {
    if signals.is_empty() {
        std::future::pending::<()>().await; // no signal could be listened for: serve on
    }
    futures_util::future::select_all(signals.iter_mut().map(|s| Box::pin(s.recv()))).await;
    tracing::info!("shutdown requested; finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::catalog_name;

    #[test]
    fn catalog_names_never_carry_a_password() {
        assert_eq!(catalog_name("postgres://ferry:s3cret@db:5432/ferry"), "postgres://db:5432/ferry");
        assert_eq!(catalog_name("postgres://ferry@db/ferry?password=s3cret&sslmode=require"), "postgres://db/ferry");
        assert_eq!(catalog_name("sqlite:///srv/ferry/ferry.db?mode=rwc"), "/srv/ferry/ferry.db");
    }
}

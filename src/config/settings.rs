//! Every setting Ferry reads, declared once: its `ferry.toml` key, its `FERRY_*` variable, its
//! default and what it means. The README's configuration table is this list, and the
//! environment layer reads exactly these variables.

/// One documented setting. `key` is its name in `ferry.toml`; `env` its variable.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    Setting { key: "data_dir", env: "FERRY_DATA_DIR", default: "./ferry-data", meaning: "Where the SQLite catalog, blobs and staging live." },
    Setting { key: "listen", env: "FERRY_LISTEN", default: "127.0.0.1:8080", meaning: "Address to bind; port 0 picks a free port." },
    Setting { key: "public_url", env: "FERRY_PUBLIC_URL", default: "http://<bound address>", meaning: "Base URL of links Ferry hands out." },
    Setting { key: "upload_url", env: "FERRY_UPLOAD_URL", default: "= public_url", meaning: "Base URL of signed upload/download URLs (may be another host)." },
    Setting { key: "database_url", env: "FERRY_DATABASE_URL", default: "sqlite://<data_dir>/ferry.db", meaning: "Catalog database." },
    Setting { key: "signing_secret", env: "FERRY_SIGNING_SECRET", default: "created once in the catalog", meaning: "HMAC secret for signed URLs (secret; never printed)." },
    Setting { key: "metrics_token", env: "FERRY_METRICS_TOKEN", default: "(none: /metrics is open)", meaning: "Bearer token GET /metrics requires (secret; never printed)." },
    Setting { key: "log_format", env: "FERRY_LOG_FORMAT", default: "text", meaning: "Log format: text or json." },
    Setting { key: "cors_origins", env: "FERRY_CORS_ORIGINS", default: "(none)", meaning: "Comma list of browser origins allowed to call Ferry; * for any." },
    Setting { key: "header_timeout", env: "FERRY_HEADER_TIMEOUT", default: "30s", meaning: "A connection whose request headers have not all arrived this long after it started waiting for them is closed." },
    Setting { key: "body_idle_timeout", env: "FERRY_BODY_IDLE_TIMEOUT", default: "30s", meaning: "An upload body that sends nothing for this long is refused (408 body_timeout) and its partial bytes go (a tus PATCH keeps what arrived); any other request body (JSON, a form) a second later." },
    Setting { key: "max_upload_size", env: "FERRY_MAX_UPLOAD_SIZE", default: "64GiB", meaning: "Largest single upload body accepted." },
    Setting { key: "signed_url_ttl", env: "FERRY_SIGNED_URL_TTL", default: "24h", meaning: "Lifetime of signed upload/download URLs." },
    Setting { key: "web_session_ttl", env: "FERRY_WEB_SESSION_TTL", default: "30d", meaning: "A web gallery sign-in lasts this long (then the page asks again); signing out or `admin web-session revoke` ends it sooner." },
    Setting { key: "upload_expiry", env: "FERRY_UPLOAD_EXPIRY", default: "24h", meaning: "Unfinished multipart and tus uploads expire (and their bytes are removed) after this; a tus PATCH renews it." },
    Setting { key: "tombstone_retention", env: "FERRY_TOMBSTONE_RETENTION", default: "30d", meaning: "Deleted items of every family keep their content this long (device media as tombstones sync clients see); then it may be collected." },
    Setting { key: "gc_grace", env: "FERRY_GC_GRACE", default: "1h", meaning: "Unreferenced blobs are kept at least this long before collection." },
    Setting { key: "remote_allow", env: "FERRY_REMOTE_ALLOW", default: "(none)", meaning: "Comma list of CIDRs or host names remote import may reach although private/loopback." },
    Setting { key: "remote_timeout", env: "FERRY_REMOTE_TIMEOUT", default: "10m", meaning: "Time limit of one remote import." },
    Setting { key: "import_dir", env: "FERRY_IMPORT_DIR", default: "<data_dir>/import", meaning: "The `local` bucket of blob import: files under it can be registered by key." },
    Setting { key: "import_buckets", env: "FERRY_IMPORT_BUCKETS", default: "(none)", meaning: "Comma list of S3 buckets blob import may read (with the s3_* endpoint and credentials; s3_bucket need not be set)." },
    Setting { key: "watch", env: "FERRY_WATCH", default: "(none)", meaning: "Comma list of watch folders `DIR=USER/FOLDER`: files dropped in DIR are ingested into USER's FOLDER." },
    Setting { key: "watch_settle_ms", env: "FERRY_WATCH_SETTLE_MS", default: "2000", meaning: "A watched file is ingested once its size and mtime stay unchanged this many milliseconds." },
    Setting { key: "watch_after", env: "FERRY_WATCH_AFTER", default: "move", meaning: "After ingesting a watched file: `move` it to DIR/done/ or `remove` it." },
    Setting { key: "harvest_interval", env: "FERRY_HARVEST_INTERVAL", default: "5m", meaning: "How often devices' gallery pull sources are harvested (index.json)." },
    Setting { key: "pull_wait", env: "FERRY_PULL_WAIT", default: "10s", meaning: "How long a gallery pull request waits for the file before answering 202 running." },
    Setting { key: "gallery_page_cache", env: "FERRY_GALLERY_PAGE_CACHE", default: "16MiB", meaning: "Bytes of gallery event pages kept ready to send again while the catalog is unchanged (embedded SQLite catalog only: after any change in it, pages are read afresh); 0 turns it off." },
    Setting { key: "job_interval", env: "FERRY_JOB_INTERVAL", default: "500ms", meaning: "How often the idle job runner looks for work." },
    Setting { key: "thumbnail_size", env: "FERRY_THUMBNAIL_SIZE", default: "320", meaning: "Long side, in pixels, of the thumbnails media processing makes." },
    Setting { key: "media_max_size", env: "FERRY_MEDIA_MAX_SIZE", default: "256MiB", meaning: "Largest image media processing decodes (in memory); larger ones keep their EXIF but get no thumbnail." },
    Setting { key: "media_workers", env: "FERRY_MEDIA_WORKERS", default: "cores, at most 4", meaning: "Media jobs (thumbnails, video facts) run at once; each may hold one decoded image." },
    Setting { key: "media_timeout", env: "FERRY_MEDIA_TIMEOUT", default: "60s", meaning: "Time limit of one ffprobe or ffmpeg run on a video." },
    Setting { key: "transcode", env: "FERRY_TRANSCODE", default: "auto", meaning: "Playable renditions: `auto` (videos a browser cannot play, HEIF photos), `off`, or `always` (every video and HEIF photo)." },
    Setting { key: "transcode_max_dimension", env: "FERRY_TRANSCODE_MAX_DIMENSION", default: "1080", meaning: "Long side, in pixels, of a transcoded video." },
    Setting { key: "transcode_timeout", env: "FERRY_TRANSCODE_TIMEOUT", default: "2h", meaning: "Time limit of one transcode; a video that takes longer gets no rendition (its job fails and says so)." },
    Setting { key: "s3_bucket", env: "FERRY_S3_BUCKET", default: "(none: blobs on local disk)", meaning: "S3 bucket for blobs and staging; setting it selects the S3-compatible store (s3_bucket_id 1)." },
    Setting { key: "s3_endpoint", env: "FERRY_S3_ENDPOINT", default: "(AWS for the region)", meaning: "S3 API base URL, e.g. http://127.0.0.1:8014 (must be reachable by clients in direct mode)." },
    Setting { key: "s3_region", env: "FERRY_S3_REGION", default: "us-east-1", meaning: "S3 region used in SigV4 signatures." },
    Setting { key: "s3_access_key_id", env: "FERRY_S3_ACCESS_KEY_ID", default: "(none)", meaning: "S3 access key id." },
    Setting { key: "s3_secret_access_key", env: "FERRY_S3_SECRET_ACCESS_KEY", default: "(none)", meaning: "S3 secret access key (secret; never printed)." },
    Setting { key: "s3_path_style", env: "FERRY_S3_PATH_STYLE", default: "true", meaning: "Address the bucket as ENDPOINT/BUCKET/KEY (true) or BUCKET.ENDPOINT/KEY (false)." },
    Setting { key: "s3_prefix", env: "FERRY_S3_PREFIX", default: "(empty)", meaning: "Key prefix for everything Ferry writes in the bucket, e.g. ferry/." },
    Setting { key: "s3_direct", env: "FERRY_S3_DIRECT", default: "false", meaning: "Hand out presigned S3 URLs so devices upload straight to S3; Ferry verifies before recording." },
];

//! Ferry's own metrics, rendered in the Prometheus text format by `GET /metrics`. One
//! registry per server (not a process-wide recorder: several servers in one test process
//! keep their figures apart). Every series a dashboard may chart exists from the start, at
//! zero, so none appears out of nowhere.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// The API families requests and uploads are counted by (`ferry` is Ferry's own routes).
pub const FAMILIES: [&str; 6] = ["device", "multipart", "session", "gallery", "tus", "ferry"];
/// What became of uploads: client bodies that began to arrive (`started`: a whole file, a
/// part or a tus PATCH each count), files committed (`finished`), bodies refused or broken
/// off and commits refused (`failed`), unfinished uploads in parts that expired (`expired`).
pub const UPLOAD_OUTCOMES: [&str; 4] = ["started", "finished", "failed", "expired"];
/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

tokio::task_local! {
    /// The family of the request being served (set around each request by the HTTP layer,
    /// changed by a route two families share once it knows which it serves), so the upload
    /// pipeline can count by family without being told.
    static FAMILY: Cell<&'static str>;
}

/// Serves `work` as a request of `family`; returns what it answered and the family it turned
/// out to be of (see [`now_serving`]).
pub async fn serve_in_family<F: Future>(family: &'static str, work: F) -> (F::Output, &'static str) {
    FAMILY.scope(Cell::new(family), async { (work.await, current_family()) }).await
}

/// `work` in the family of the request in progress (for a task a request spawns).
pub fn in_family<F: Future>(work: F) -> impl Future<Output = F::Output> {
    FAMILY.scope(Cell::new(current_family()), work)
}

/// The family of the request in progress; background work is `job`.
pub fn current_family() -> &'static str {
    FAMILY.try_with(Cell::get).unwrap_or("job")
}

/// The request in progress is of `family` after all: a part PUT to the upload host's
/// `/signed/part` belongs to the family whose upload it is (device or multipart).
pub fn now_serving(family: &'static str) {
    // outside a request (a job) there is nothing to relabel
    let _ = FAMILY.try_with(|current| current.set(family));
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    upload_bytes: Mutex<BTreeMap<&'static str, u64>>,
    dedup_bytes: Mutex<BTreeMap<&'static str, u64>>,
    uploads: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    jobs: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Upload bodies arriving now, by family.
    active: Mutex<BTreeMap<&'static str, i64>>,
}

/// An upload body arriving: active until dropped. Dropped before [`ActiveUpload::received`]
/// (refused, broken off, or its request abandoned by a client that went away), it counts as
/// `failed`.
pub struct ActiveUpload<'a> {
    metrics: &'a Metrics,
    family: &'static str,
    received: bool,
}

impl ActiveUpload<'_> {
    /// The whole body arrived and checked out.
    pub fn received(mut self) {
        self.received = true;
    }
}

impl Drop for ActiveUpload<'_> {
    fn drop(&mut self) {
        *self.metrics.active.lock().expect("not poisoned").entry(self.family).or_default() -= 1;
        if !self.received {
            *self.metrics.uploads.lock().expect("not poisoned").entry((self.family, "failed")).or_default() += 1;
        }
    }
}

/// What only the catalog knows, read when `/metrics` is asked.
pub struct Gauges {
    pub blobs: i64,
    pub blob_bytes: i64,
    /// `sqlite` or `postgres`.
    pub catalog_backend: &'static str,
    /// Connections for reads and for writes: (handed out, seconds spent waiting for them).
    pub catalog_reads: (u64, f64),
    pub catalog_writes: (u64, f64),
    /// Pending jobs by kind (every kind listed, zero included).
    pub queue_depth: Vec<(String, i64)>,
    /// Gallery event pages: (sent from memory, read from the catalog, bytes kept now).
    pub gallery_pages: (u64, u64, usize),
}

impl Metrics {
    pub fn request(&self, family: &'static str, route: &str, status: u16, took: Duration) {
        *self.requests.lock().expect("not poisoned").entry((family, route.to_owned(), status)).or_default() += 1;
        let mut durations = self.durations.lock().expect("not poisoned");
        let histogram = durations.entry(family).or_default();
        let seconds = took.as_secs_f64();
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            *count += u64::from(seconds <= bound);
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// An upload body began to arrive: active until the guard drops.
    pub fn upload_started(&self) -> ActiveUpload<'_> {
        let family = current_family();
        *self.uploads.lock().expect("not poisoned").entry((family, "started")).or_default() += 1;
        *self.active.lock().expect("not poisoned").entry(family).or_default() += 1;
        ActiveUpload { metrics: self, family, received: false }
    }

    /// A verified upload of `size` bytes was committed; `deduplicated` when its content was
    /// stored already (the bytes were received but nothing new was kept).
    pub fn upload_finished(&self, size: u64, deduplicated: bool) {
        let family = current_family();
        *self.upload_bytes.lock().expect("not poisoned").entry(family).or_default() += size;
        if deduplicated {
            *self.dedup_bytes.lock().expect("not poisoned").entry(family).or_default() += size;
        }
        *self.uploads.lock().expect("not poisoned").entry((family, "finished")).or_default() += 1;
    }

    /// An upload was refused or failed after its bytes began to arrive; nothing was kept.
    pub fn upload_failed(&self) {
        *self.uploads.lock().expect("not poisoned").entry((current_family(), "failed")).or_default() += 1;
    }

    /// An unfinished upload of `family` expired and its bytes went.
    pub fn upload_expired(&self, family: &'static str) {
        *self.uploads.lock().expect("not poisoned").entry((family, "expired")).or_default() += 1;
    }

    /// Content a client did not need to send (a device `upload` check answered `skip_upload`).
    pub fn upload_skipped(&self, size: u64) {
        *self.dedup_bytes.lock().expect("not poisoned").entry(current_family()).or_default() += size;
    }

    pub fn job(&self, kind: &str, outcome: &'static str) {
        *self.jobs.lock().expect("not poisoned").entry((kind.to_owned(), outcome)).or_default() += 1;
    }

    /// The Prometheus text exposition of everything, with `gauges` from the catalog.
    pub fn render(&self, gauges: &Gauges, job_kinds: &[&str]) -> String {
        let mut out = String::new();
        header(&mut out, "ferry_http_requests_total", "counter", "HTTP requests by family, route template and status.");
        for ((family, route, status), n) in self.requests.lock().expect("not poisoned").iter() {
            let _ = writeln!(
                out,
                "ferry_http_requests_total{{family=\"{family}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        header(&mut out, "ferry_http_request_duration_seconds", "histogram", "HTTP request durations by family.");
        let durations = self.durations.lock().expect("not poisoned");
        for family in FAMILIES {
            let empty = Histogram::default();
            let h = durations.get(family).unwrap_or(&empty);
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "ferry_http_request_duration_seconds_bucket{{family=\"{family}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "ferry_http_request_duration_seconds_bucket{{family=\"{family}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "ferry_http_request_duration_seconds_sum{{family=\"{family}\"}} {}", h.sum);
            let _ = writeln!(out, "ferry_http_request_duration_seconds_count{{family=\"{family}\"}} {}", h.count);
        }
        drop(durations);
        by_family(
            &mut out,
            "ferry_upload_bytes_total",
            "Bytes of verified uploads committed, by family.",
            &self.upload_bytes,
        );
        by_family(
            &mut out,
            "ferry_dedup_bytes_total",
            "Bytes not stored again: content already held or stored, by family.",
            &self.dedup_bytes,
        );
        header(&mut out, "ferry_uploads_total", "counter", "Uploads by family and outcome.");
        let uploads = self.uploads.lock().expect("not poisoned");
        for family in FAMILIES.iter().chain(&["job"]) {
            for outcome in UPLOAD_OUTCOMES {
                let n = uploads.get(&(*family, outcome)).copied().unwrap_or(0);
                let _ = writeln!(out, "ferry_uploads_total{{family=\"{family}\",outcome=\"{outcome}\"}} {n}");
            }
        }
        drop(uploads);
        header(&mut out, "ferry_uploads_active", "gauge", "Upload bodies arriving now, by family.");
        let active = self.active.lock().expect("not poisoned");
        for family in FAMILIES.iter().chain(&["job"]) {
            let _ = writeln!(
                out,
                "ferry_uploads_active{{family=\"{family}\"}} {}",
                active.get(family).copied().unwrap_or(0)
            );
        }
        drop(active);
        header(&mut out, "ferry_jobs_total", "counter", "Background jobs run, by kind and outcome.");
        let jobs = self.jobs.lock().expect("not poisoned");
        for kind in job_kinds {
            for outcome in ["done", "retried", "failed"] {
                let n = jobs.get(&((*kind).to_owned(), outcome)).copied().unwrap_or(0);
                let _ = writeln!(out, "ferry_jobs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}");
            }
        }
        drop(jobs);
        header(&mut out, "ferry_job_queue_depth", "gauge", "Jobs waiting to run, by kind.");
        for (kind, depth) in &gauges.queue_depth {
            let _ = writeln!(out, "ferry_job_queue_depth{{kind=\"{kind}\"}} {depth}");
        }
        header(&mut out, "ferry_blobs", "gauge", "Blobs stored (each content once).");
        let _ = writeln!(out, "ferry_blobs {}", gauges.blobs);
        header(&mut out, "ferry_blob_store_bytes", "gauge", "Bytes the blob store holds (thumbnails included).");
        let _ = writeln!(out, "ferry_blob_store_bytes {}", gauges.blob_bytes);
        let backend = gauges.catalog_backend;
        let help = "Catalog connections handed out, for reads and for write transactions.";
        header(&mut out, "ferry_catalog_acquires_total", "counter", help);
        let help = "Seconds spent waiting for those connections: PostgreSQL's pool, SQLite's one writer.";
        let mut waited = format!(
            "# HELP ferry_catalog_wait_seconds_total {help}\n# TYPE ferry_catalog_wait_seconds_total counter\n"
        );
        for (kind, (acquires, seconds)) in [("read", gauges.catalog_reads), ("write", gauges.catalog_writes)] {
            let labels = format!("{{backend=\"{backend}\",kind=\"{kind}\"}}");
            let _ = writeln!(out, "ferry_catalog_acquires_total{labels} {acquires}");
            let _ = writeln!(waited, "ferry_catalog_wait_seconds_total{labels} {seconds}");
        }
        out.push_str(&waited);
        let (kept, read, bytes) = gauges.gallery_pages;
        let help = "Gallery event pages answered: sent again from memory (the catalog unchanged since), or read.";
        header(&mut out, "ferry_gallery_pages_total", "counter", help);
        let _ = writeln!(out, "ferry_gallery_pages_total{{answer=\"kept\"}} {kept}");
        let _ = writeln!(out, "ferry_gallery_pages_total{{answer=\"read\"}} {read}");
        let help = "Bytes of gallery event pages kept in memory (counted against FERRY_GALLERY_PAGE_CACHE).";
        header(&mut out, "ferry_gallery_page_cache_bytes", "gauge", help);
        let _ = writeln!(out, "ferry_gallery_page_cache_bytes {bytes}");
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn by_family(out: &mut String, name: &str, help: &str, values: &Mutex<BTreeMap<&'static str, u64>>) {
    header(out, name, "counter", help);
    let values = values.lock().expect("not poisoned");
    for family in FAMILIES.iter().chain(&["job"]) {
        let _ = writeln!(out, "{name}{{family=\"{family}\"}} {}", values.get(family).copied().unwrap_or(0));
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_from_the_start_and_counts_by_family() {
        let metrics = Metrics::default();
        let gauges = Gauges {
            blobs: 0,
            blob_bytes: 0,
            catalog_backend: "sqlite",
            catalog_reads: (0, 0.0),
            catalog_writes: (0, 0.0),
            queue_depth: vec![("media_process".into(), 0)],
            gallery_pages: (0, 0, 0),
        };
        let empty = metrics.render(&gauges, &["media_process"]);
        for series in [
            "ferry_upload_bytes_total{family=\"tus\"} 0",
            "ferry_dedup_bytes_total{family=\"device\"} 0",
            "ferry_uploads_total{family=\"session\",outcome=\"failed\"} 0",
            "ferry_jobs_total{kind=\"media_process\",outcome=\"done\"} 0",
            "ferry_job_queue_depth{kind=\"media_process\"} 0",
            "ferry_http_request_duration_seconds_count{family=\"gallery\"} 0",
            "ferry_blobs 0",
            "ferry_uploads_active{family=\"device\"} 0",
            "ferry_uploads_total{family=\"tus\",outcome=\"started\"} 0",
            "ferry_catalog_wait_seconds_total{backend=\"sqlite\",kind=\"write\"} 0",
            "ferry_gallery_pages_total{answer=\"kept\"} 0",
            "ferry_gallery_page_cache_bytes 0",
        ] {
            assert!(empty.contains(series), "{series} missing from:\n{empty}");
        }
        let arriving = FAMILY.sync_scope(Cell::new("gallery"), || metrics.upload_started());
        assert!(metrics.render(&gauges, &[]).contains("ferry_uploads_active{family=\"gallery\"} 1"));
        drop(arriving); // a client that went away mid-body: active no more, and failed
        FAMILY.sync_scope(Cell::new("gallery"), || metrics.upload_finished(100, true));
        metrics.request("gallery", "/api/gallery/{device}/upload", 200, Duration::from_millis(3));
        let text = metrics.render(&gauges, &["media_process"]);
        assert!(text.contains("ferry_upload_bytes_total{family=\"gallery\"} 100"));
        assert!(text.contains("ferry_uploads_active{family=\"gallery\"} 0"));
        assert!(text.contains("ferry_uploads_total{family=\"gallery\",outcome=\"started\"} 1"));
        assert!(text.contains("ferry_uploads_total{family=\"gallery\",outcome=\"failed\"} 1"));
        assert!(text.contains("ferry_dedup_bytes_total{family=\"gallery\"} 100"));
        assert!(text.contains(
            "ferry_http_requests_total{family=\"gallery\",route=\"/api/gallery/{device}/upload\",status=\"200\"} 1"
        ));
        assert!(text.contains("ferry_http_request_duration_seconds_bucket{family=\"gallery\",le=\"0.005\"} 1"));
        assert!(text.contains("ferry_http_request_duration_seconds_bucket{family=\"gallery\",le=\"0.001\"} 0"));
    }
}

//! Fetching a remote URL into the pipeline without becoming a proxy into the owner's
//! network (SSRF). Every hop is checked: scheme http/https, the host resolved once here, every
//! resolved address checked against [`is_forbidden`] unless allowed, and the connection
//! pinned to the checked address (no second resolution). Redirects are followed by hand, a
//! bounded number of times, each one checked the same way.
//!
//! Allowed despite [`is_forbidden`]: what the operator lists (`FERRY_REMOTE_ALLOW`: CIDRs or
//! host names), and URLs under a [`UrlBase`] a caller adds for one fetch — a device's
//! registered pull source, which may well be on the LAN, but only it: not the rest of its
//! host, nor another port of it.

mod base;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;

pub use base::UrlBase;

use crate::domain::{Cidr, is_forbidden};
use crate::ingest::{Expectation, Ingest, IngestError, Received};

const MAX_REDIRECTS: usize = 5;

/// Exceptions to the forbidden ranges: the operator's (`FERRY_REMOTE_ALLOW`) and URL bases
/// added for a fetch ([`RemotePolicy::with_base`]).
#[derive(Debug, Clone, Default)]
pub struct RemotePolicy {
    cidrs: Vec<Cidr>,
    hosts: Vec<String>,
    bases: Vec<UrlBase>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The target is not allowed (scheme, address, resolution). Final.
    #[error("{0}")]
    Refused(String),
    /// The server answered with an error status; 5xx may be retried.
    #[error("the remote server answered {0}")]
    Status(u16),
    /// Network trouble; worth retrying.
    #[error("fetching failed: {0}")]
    Network(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Bytes fetched and staged, with what the response said about them.
pub struct Fetched {
    pub received: Received,
    pub content_type: Option<String>,
    pub final_url: Url,
}

impl RemotePolicy {
    /// Entries are CIDRs/addresses or host names; a bad CIDR-looking entry is an error.
    pub fn parse(entries: &[String]) -> Result<Self, crate::domain::ParseError> {
        let mut policy = Self::default();
        for entry in entries {
            let looks_like_address = entry.contains('/') || entry.parse::<IpAddr>().is_ok() || entry.contains(':');
            if looks_like_address {
                policy.cidrs.push(Cidr::parse(entry)?);
            } else {
                policy.hosts.push(entry.to_ascii_lowercase());
            }
        }
        Ok(policy)
    }

    /// This policy plus the URLs under `base`, whatever address their host resolves to (a
    /// device's registered pull source); the rest of that host stays as forbidden as it was.
    pub fn with_base(&self, base: &UrlBase) -> Self {
        let mut policy = self.clone();
        policy.bases.push(base.clone());
        policy
    }

    fn allows(&self, url: &Url, host: &str, ip: IpAddr) -> bool {
        !is_forbidden(ip)
            || self.hosts.iter().any(|h| h == host)
            || self.cidrs.iter().any(|c| c.contains(ip))
            || self.bases.iter().any(|b| b.contains(url))
    }

    /// Checks a URL and resolves its host; returns the one address to connect to.
    pub async fn check(&self, url: &Url) -> Result<SocketAddr, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Refused(format!("only http and https URLs can be fetched, not {}", url.scheme())));
        }
        let host =
            url.host_str().ok_or_else(|| FetchError::Refused("the URL has no host".into()))?.to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| FetchError::Refused(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(FetchError::Refused(format!("{host} resolves to no address")));
        }
        // every address must pass: a name with one public and one private record is refused
        if let Some(bad) = addresses.iter().find(|a| !self.allows(url, &host, a.ip())) {
            let what = if literal.parse::<IpAddr>().is_ok() {
                host.clone()
            } else {
                format!("{host} resolves to {}, which", bad.ip())
            };
            return Err(FetchError::Refused(format!(
                "{what} is an address remote import may not reach (loopback, private or special)"
            )));
        }
        Ok(addresses[0])
    }
}

/// Opens `url` with GET, following checked redirects; returns the final response.
async fn open(policy: &RemotePolicy, url: Url, timeout: Duration) -> Result<(reqwest::Response, Url), FetchError> {
    let mut url = url;
    for _ in 0..=MAX_REDIRECTS {
        let address = policy.check(&url).await?;
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .no_proxy();
        if let Some(host) = url.host_str().filter(|h| h.parse::<IpAddr>().is_err() && !h.starts_with('[')) {
            client = client.resolve(host, address); // connect to the address just checked
        }
        let client = client.build().map_err(|e| FetchError::Network(e.to_string()))?;
        let response = client.get(url.clone()).send().await.map_err(|e| FetchError::Network(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or(FetchError::Status(status.as_u16()))?;
            url = url.join(location).map_err(|_| FetchError::Refused(format!("bad redirect location {location}")))?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        return Ok((response, url));
    }
    Err(FetchError::Refused(format!("more than {MAX_REDIRECTS} redirects")))
}

/// Fetches `url` into staging (not committed), following checked redirects.
pub async fn fetch(
    policy: &RemotePolicy,
    ingest: &Ingest,
    url: Url,
    max_size: u64,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let (response, final_url) = open(policy, url, timeout).await?;
    let content_type =
        response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let expect =
        Expectation { max_size: Some(max_size), size_hint: response.content_length(), ..Expectation::default() };
    let received = ingest.receive(response.bytes_stream().boxed(), &expect).await?;
    Ok(Fetched { received, content_type, final_url })
}

/// Fetches a small document (a device's `index.json`) into memory, at most `limit` bytes.
pub async fn fetch_small(
    policy: &RemotePolicy,
    url: Url,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let (response, _) = open(policy, url, timeout).await?;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        body.extend_from_slice(&piece.map_err(|e| FetchError::Network(e.to_string()))?);
        if body.len() > limit {
            return Err(FetchError::Refused(format!("the document is larger than {limit} bytes")));
        }
    }
    Ok(body)
}

/// A title for a fetched file: the last path segment of its URL.
pub fn title_from(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| url.host_str().unwrap_or("download").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literal_and_named_loopback_targets_are_refused_unless_allowed() {
        let strict = RemotePolicy::default();
        for target in [
            "http://127.0.0.1/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://localhost/x",
            "http://169.254.169.254/latest",
            "ftp://example.com/x",
            "file:///etc/passwd",
        ] {
            let url = Url::parse(target).unwrap();
            assert!(matches!(strict.check(&url).await, Err(FetchError::Refused(_))), "{target}");
        }
        let allowed = RemotePolicy::parse(&["127.0.0.1/32".into()]).unwrap();
        assert!(allowed.check(&Url::parse("http://127.0.0.1:9/x").unwrap()).await.is_ok());
        assert!(allowed.check(&Url::parse("http://10.0.0.1/x").unwrap()).await.is_err());
        let by_name = RemotePolicy::parse(&["localhost".into()]).unwrap();
        assert!(by_name.check(&Url::parse("http://localhost:9/x").unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn a_base_allows_what_is_under_it_and_nothing_else_of_its_host() {
        let policy = RemotePolicy::default().with_base(&UrlBase::parse("http://127.0.0.1:8080/dcim").unwrap());
        let inside = Url::parse("http://127.0.0.1:8080/dcim/a.jpg").unwrap();
        assert!(policy.check(&inside).await.is_ok());
        for outside in [
            "http://127.0.0.1:8081/dcim/a.jpg",
            "http://127.0.0.1:8080/escaped",
            "http://127.0.0.1:8080/dcim/..%2Fescaped",
            "http://127.0.0.2:8080/dcim/a.jpg",
            "http://localhost:8080/dcim/a.jpg",
        ] {
            let url = Url::parse(outside).unwrap();
            assert!(matches!(policy.check(&url).await, Err(FetchError::Refused(_))), "{outside}");
        }
    }
}

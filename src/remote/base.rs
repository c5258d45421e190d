//! A URL base: one scheme, host, port and path prefix that URLs must stay strictly under.
//! A device's pull source is one: the names its `index.json` lists are file paths below it
//! (never URLs of their own), and the address allowance its registration grants covers
//! only it, so neither a name nor a redirect reaches another port or path of its host.

use percent_encoding::percent_decode_str;
use reqwest::Url;

use crate::domain::ParseError;

/// `scheme://host[:port]/prefix/`: an http(s) URL whose path ends in `/`, without query
/// or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlBase(Url);

/// How many layers of percent-encoding a segment is unwrapped through before it is
/// judged: servers and proxies that decode twice exist, and `%252e%252e` is `..` to them.
const DECODINGS: usize = 3;

impl UrlBase {
    /// Parses an http(s) URL as a base; a trailing `/` is implied. Errors quote `raw`
    /// without its password, as they end up in logs and answers.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let shown = crate::redact::url_passwords(raw);
        let url = Url::parse(&format!("{}/", raw.trim_end_matches('/')))
            .map_err(|e| ParseError::new(format!("'{shown}': {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ParseError::new(format!("'{shown}' is not an http(s) URL")));
        }
        if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(ParseError::new(format!(
                "'{shown}' must be scheme://host[:port]/path without query or fragment"
            )));
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// Whether `url` lies under this base: the same scheme, host and port, and a path below
    /// the base's whose further segments are plain names in every encoding (no `.` or `..`,
    /// no encoded `/` or `\`, no control characters). Userinfo and query do not matter.
    pub fn contains(&self, url: &Url) -> bool {
        let base = &self.0;
        url.scheme() == base.scheme()
            && url.host() == base.host()
            && url.port_or_known_default() == base.port_or_known_default()
            && url
                .path()
                .strip_prefix(base.path())
                .is_some_and(|rest| rest.split('/').all(|s| s.is_empty() || is_plain(s)))
    }

    /// The URL of `name` — a relative path of literal file names, as a device index lists
    /// them (`IMG 0001.jpg`, `2026/été.jpg`) — under this base; refused when `name` is
    /// anything else (a URL, an absolute path, a `.`/`..` segment in any encoding).
    pub fn resolve(&self, name: &str) -> Result<Url, ParseError> {
        let refuse = |why: &str| Err(ParseError::new(format!("'{}' {why}", name.escape_debug())));
        if name.is_empty() {
            return refuse("is empty");
        }
        if Url::parse(name).is_ok() {
            return refuse("is a URL, not a file name");
        }
        if name.starts_with('/') || name.contains('\\') {
            return refuse("is not a relative path");
        }
        if !name.split('/').all(is_plain) {
            return refuse("has an empty, '.' or '..' segment or a control character");
        }
        let mut url = self.0.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| ParseError::new("the base cannot take a path"))?;
            segments.pop_if_empty();
            for segment in name.split('/') {
                segments.push(segment); // percent-encodes it, `%`, `?`, `#` and `/` included
            }
        }
        if !self.contains(&url) {
            return refuse("does not stay under the base");
        }
        Ok(url)
    }
}

impl std::fmt::Display for UrlBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A non-empty path segment that is neither `.` nor `..` and holds no `/`, `\` or control
/// character, as it is and after each of up to [`DECODINGS`] percent-decodings.
fn is_plain(segment: &str) -> bool {
    let mut text = segment.to_owned();
    for _ in 0..=DECODINGS {
        if text.is_empty()
            || text == "."
            || text == ".."
            || text.chars().any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return false;
        }
        let decoded = percent_decode_str(&text).decode_utf8_lossy().into_owned();
        if decoded == text {
            return true;
        }
        text = decoded;
    }
    // still changing after that many decodings: nothing a file name needs
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> UrlBase {
        UrlBase::parse("http://192.0.2.7:8080/dcim").unwrap()
    }

    #[test]
    fn names_resolve_under_the_base_as_literal_file_names() {
        let b = base();
        for (name, path) in [
            ("a.jpg", "/dcim/a.jpg"),
            ("IMG 0001.jpg", "/dcim/IMG%200001.jpg"),
            ("2026/été.jpg", "/dcim/2026/%C3%A9t%C3%A9.jpg"),
            ("100%.jpg", "/dcim/100%25.jpg"),
            ("what?#.jpg", "/dcim/what%3F%23.jpg"),
            ("..a", "/dcim/..a"),
        ] {
            let url = b.resolve(name).unwrap();
            assert_eq!((url.port(), url.path()), (Some(8080), path), "{name}");
            assert!(b.contains(&url));
        }
    }

    #[test]
    fn names_that_leave_the_base_in_any_spelling_are_refused() {
        let b = base();
        for name in [
            "",
            "http://192.0.2.7:9090/secret",
            "//192.0.2.7:9090/secret",
            "http:secret",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "%2e%2e/x",
            "%2E%2e/x",
            ".%2e/x",
            "%252e%252e/x",
            "..%2fx",
            "..%5cx",
            "..\\x",
            "./x",
            "a//b",
            "a\u{0}b",
            "tab\there",
            "%00",
        ] {
            assert!(b.resolve(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn only_urls_strictly_under_the_base_are_contained() {
        let b = base();
        for inside in ["http://192.0.2.7:8080/dcim/a.jpg", "http://u:p@192.0.2.7:8080/dcim/x/y?z=1"] {
            assert!(b.contains(&Url::parse(inside).unwrap()), "{inside}");
        }
        for outside in [
            "http://192.0.2.7:8081/dcim/a.jpg",
            "https://192.0.2.7:8080/dcim/a.jpg",
            "http://192.0.2.8:8080/dcim/a.jpg",
            "http://192.0.2.7:8080/dcim",
            "http://192.0.2.7:8080/dcimx/a.jpg",
            "http://192.0.2.7:8080/escaped",
            "http://192.0.2.7:8080/dcim/%2e%2e/escaped",
            "http://192.0.2.7:8080/dcim/..%2Fescaped",
            "http://192.0.2.7:8080/dcim/%252e%252e/escaped",
        ] {
            assert!(!b.contains(&Url::parse(outside).unwrap()), "{outside}");
        }
        assert_eq!(UrlBase::parse("http://h/a/").unwrap().url().as_str(), "http://h/a/");
        assert!(UrlBase::parse("ftp://h/a").is_err() && UrlBase::parse("http://h/a?x=1").is_err());
        let with_password = UrlBase::parse("http://cam:pw@h/a").unwrap();
        assert_eq!(with_password.url().password(), Some("pw"), "the fetch needs it");
        assert!(!UrlBase::parse("http://cam:pw@h/a?x").unwrap_err().to_string().contains("pw"), "errors hide it");
    }
}

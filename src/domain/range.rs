//! A single HTTP byte range, resolved against a known length.

/// A satisfiable inclusive range `start..=end` within a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Outcome of reading a `Range` header against a blob of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole body (also for syntax we ignore, as RFC 9110 allows).
    Full,
    Partial(ByteRange),
    Unsatisfiable,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Resolves a `Range` header value (`bytes=a-b`, `bytes=a-`, `bytes=-n`). Multiple
    /// ranges are answered with the whole body, which RFC 9110 permits.
    pub fn resolve(header: Option<&str>, total: u64) -> RangeRequest {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return RangeRequest::Full;
        };
        if spec.contains(',') {
            return RangeRequest::Full;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return RangeRequest::Full;
        };
        let parse = |s: &str| s.trim().parse::<u64>().ok();
        let range = match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => match parse(last) {
                Some(0) => return RangeRequest::Unsatisfiable,
                Some(n) if total > 0 => Some((total.saturating_sub(n), total - 1)),
                Some(_) => return RangeRequest::Unsatisfiable,
                None => return RangeRequest::Full,
            },
            (false, true) => match parse(first) {
                Some(start) => Some((start, total.saturating_sub(1))),
                None => return RangeRequest::Full,
            },
            (false, false) => match (parse(first), parse(last)) {
                (Some(s), Some(e)) if s <= e => Some((s, e.min(total.saturating_sub(1)))),
                _ => return RangeRequest::Full,
            },
            (true, true) => return RangeRequest::Full,
        };
        match range {
            Some((start, end)) if start < total => RangeRequest::Partial(ByteRange { start, end }),
            _ => RangeRequest::Unsatisfiable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn resolves_first_middle_suffix_and_open_ranges() {
        assert_eq!(ByteRange::resolve(Some("bytes=0-9"), 100), r(0, 9));
        assert_eq!(ByteRange::resolve(Some("bytes=40-49"), 100), r(40, 49));
        assert_eq!(ByteRange::resolve(Some("bytes=-10"), 100), r(90, 99));
        assert_eq!(ByteRange::resolve(Some("bytes=95-"), 100), r(95, 99));
        assert_eq!(ByteRange::resolve(Some("bytes=90-500"), 100), r(90, 99));
        assert_eq!(ByteRange::resolve(Some("bytes=-500"), 100), r(0, 99));
    }

    #[test]
    fn unsatisfiable_and_ignored_forms() {
        assert_eq!(ByteRange::resolve(Some("bytes=100-"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(ByteRange::resolve(Some("bytes=-0"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(ByteRange::resolve(Some("bytes=0-0"), 0), RangeRequest::Unsatisfiable);
        assert_eq!(ByteRange::resolve(None, 100), RangeRequest::Full);
        assert_eq!(ByteRange::resolve(Some("bytes=0-1,5-6"), 100), RangeRequest::Full);
        assert_eq!(ByteRange::resolve(Some("items=0-1"), 100), RangeRequest::Full);
        assert_eq!(ByteRange::resolve(Some("bytes=9-3"), 100), RangeRequest::Full);
    }
}

//! Wall-clock time as the catalog stores it (Unix milliseconds) and as APIs show it.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// ISO 8601 UTC with millisecond precision, e.g. `2026-11-23T18:17:34.123Z`.
pub fn iso(ms: i64) -> String {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let text = at.format(&Rfc3339).unwrap_or_default();
    // Rfc3339 prints nanoseconds only when present; normalise to milliseconds.
    match text.split_once('.') {
        Some((whole, _)) => format!("{whole}.{:03}Z", ms.rem_euclid(1000)),
        None => format!("{}.{:03}Z", text.trim_end_matches('Z'), ms.rem_euclid(1000)),
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate), e.g. `Wed, 25 Jun 2014 16:00:00 GMT`, as headers
/// such as tus's `Upload-Expires` carry.
pub fn http_date(ms: i64) -> String {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(super::http_date(1_403_712_000_000), "Wed, 25 Jun 2014 16:00:00 GMT");
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn iso_has_millisecond_precision() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_795_457_854_123), "2026-11-23T18:17:34.123Z");
    }
}

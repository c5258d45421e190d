//! Durations and sizes as people write them in settings and flags.

use std::time::Duration;

use crate::domain::ParseError;

/// `90s`, `15m`, `24h`, `30d`, `250ms` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 =
        number.parse().map_err(|_| ParseError::new(format!("'{text}' is not a duration like 90s, 15m, 24h")))?;
    let secs = |mult: u64| Duration::from_secs(n.saturating_mul(mult));
    match unit.trim() {
        "" | "s" => Ok(secs(1)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(secs(60)),
        "h" => Ok(secs(3600)),
        "d" => Ok(secs(86_400)),
        other => Err(ParseError::new(format!("unknown duration unit '{other}' in '{text}'"))),
    }
}

/// `1048576`, `512KiB`, `100MiB`, `64GiB`, `10MB`.
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if unit.starts_with('.') {
        return Err(ParseError::new(format!("'{text}': a size is a whole number of a unit, like 1536MiB for 1.5GiB")));
    }
    let n: u64 = number.parse().map_err(|_| ParseError::new(format!("'{text}' is not a size like 100MiB")))?;
    // units in any case; the `i` still tells binary (KiB = 1024) from decimal (KB = 1000)
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(ParseError::new(format!(
                "unknown size unit '{}' in '{text}' (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                unit.trim()
            )));
        }
    };
    n.checked_mul(mult).ok_or_else(|| ParseError::new(format!("'{text}' is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert!(parse_size("5 lots").is_err());
        assert_eq!(parse_size("50gb").unwrap(), 50_000_000_000);
        assert_eq!(parse_size("2gib").unwrap(), 2 << 30);
        assert!(parse_size("1.5GiB").unwrap_err().to_string().contains("whole number"));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
    }
}

//! EXIF: capture time, camera, lens, orientation, GPS and pixel size, read with
//! `kamadak-exif` from JPEG, TIFF, HEIF, PNG and WebP containers. Every value is checked
//! before it is kept: a crafted file yields fewer facts, never wrong ones or a failure.

use std::io::Cursor;

use exif::{DateTime, Exif, In, Tag, Value};

use super::{Gps, Metadata};

/// Fills `meta` with what the EXIF in `bytes` (a whole file, or its first part) says;
/// `false` when there is none or it cannot be read.
pub fn read_exif(bytes: &[u8], meta: &mut Metadata) -> bool {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return false;
    };
    meta.captured = captured(&exif);
    meta.make = text(&exif, Tag::Make);
    meta.model = text(&exif, Tag::Model);
    meta.lens = text(&exif, Tag::LensModel);
    meta.orientation = uint(&exif, Tag::Orientation).filter(|o| (1..=8).contains(o)).map(|o| o as u16);
    meta.gps = gps(&exif);
    let pixels = |tag| uint(&exif, tag).filter(|v| (1..=1_000_000).contains(v));
    if let (None, Some(w), Some(h)) = (meta.width, pixels(Tag::PixelXDimension), pixels(Tag::PixelYDimension)) {
        let turned = meta.orientation.is_some_and(|o| o >= 5);
        (meta.width, meta.height) = if turned { (Some(h), Some(w)) } else { (Some(w), Some(h)) };
    }
    true
}

fn ascii(exif: &Exif, tag: Tag) -> Option<&[u8]> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(parts) => parts.first().map(Vec::as_slice),
        _ => None,
    }
}

/// Printable text, trimmed of padding; at most 128 characters.
fn text(exif: &Exif, tag: Tag) -> Option<String> {
    let raw = String::from_utf8_lossy(ascii(exif, tag)?);
    let clean: String = raw.trim_matches(|c: char| c == '\0' || c.is_whitespace()).chars().take(128).collect();
    (!clean.is_empty() && !clean.chars().any(char::is_control)).then_some(clean)
}

fn uint(exif: &Exif, tag: Tag) -> Option<u32> {
    exif.get_field(tag, In::PRIMARY)?.value.get_uint(0)
}

/// DateTimeOriginal (else DateTime) with its offset and sub-seconds when recorded.
fn captured(exif: &Exif) -> Option<String> {
    let (time_tag, offset_tag) = if ascii(exif, Tag::DateTimeOriginal).is_some() {
        (Tag::DateTimeOriginal, Tag::OffsetTimeOriginal)
    } else {
        (Tag::DateTime, Tag::OffsetTime)
    };
    let mut at = DateTime::from_ascii(ascii(exif, time_tag)?).ok()?;
    if let Some(offset) = ascii(exif, offset_tag) {
        let _ = at.parse_offset(offset);
    }
    iso(&at)
}

fn iso(at: &DateTime) -> Option<String> {
    let month = time::Month::try_from(at.month).ok()?;
    time::Date::from_calendar_date(i32::from(at.year), month, at.day).ok()?;
    time::Time::from_hms(at.hour, at.minute, at.second).ok()?;
    let local =
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", at.year, at.month, at.day, at.hour, at.minute, at.second);
    Some(match at.offset.filter(|o| o.abs() <= 18 * 60) {
        Some(o) => format!("{local}{}{:02}:{:02}", if o < 0 { '-' } else { '+' }, o.abs() / 60, o.abs() % 60),
        None => local,
    })
}

fn rationals(exif: &Exif, tag: Tag) -> Option<Vec<f64>> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Rational(parts) => Some(parts.iter().map(|r| r.to_f64()).collect()),
        _ => None,
    }
}

/// Degrees, minutes and seconds (any prefix of them) as signed degrees.
fn degrees(exif: &Exif, tag: Tag, reference: Tag, negative: u8) -> Option<f64> {
    let parts = rationals(exif, tag)?;
    let value: f64 = parts.iter().zip([1.0, 60.0, 3600.0]).map(|(v, div)| v / div).sum();
    let sign = match ascii(exif, reference).and_then(|r| r.first()) {
        Some(r) if r.eq_ignore_ascii_case(&negative) => -1.0,
        _ => 1.0,
    };
    (!parts.is_empty()).then_some(sign * value)
}

fn gps(exif: &Exif) -> Option<Gps> {
    let lat = degrees(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S')?;
    let lon = degrees(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W')?;
    let alt = rationals(exif, Tag::GPSAltitude).and_then(|a| a.first().copied()).map(|a| {
        let below = exif.get_field(Tag::GPSAltitudeRef, In::PRIMARY).and_then(|f| f.value.get_uint(0)) == Some(1);
        if below { -a } else { a }
    });
    Gps::checked(lat, lon, alt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_validated_and_keep_their_offset() {
        let mut at = DateTime::from_ascii(b"2024:05:01 12:30:05").unwrap();
        assert_eq!(iso(&at).unwrap(), "2024-05-01T12:30:05");
        at.parse_offset(b"-03:30").unwrap();
        assert_eq!(iso(&at).unwrap(), "2024-05-01T12:30:05-03:30");
        assert!(iso(&DateTime::from_ascii(b"2024:13:01 12:30:05").unwrap()).is_none());
        assert!(iso(&DateTime::from_ascii(b"2024:02:30 25:00:00").unwrap()).is_none());
    }

    #[test]
    fn garbage_is_no_exif() {
        let mut meta = Metadata::default();
        assert!(!read_exif(b"\xFF\xD8\xFF\xE1\x00\x10Exif\0\0MM\0*\xFF\xFF\xFF\xFF", &mut meta));
        assert!(!read_exif(b"", &mut meta));
        assert_eq!(meta, Metadata::default());
    }
}

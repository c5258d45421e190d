//! Checks of the parsers hostile bytes reach without a server: each returns quietly when the
//! input is refused and asserts what an accepted input must then be.

use crate::config::{Config, layer_from_toml};
use crate::domain::{ByteRange, DeviceId, MediaPath, RangeRequest, UserId};
use crate::media::{Class, Limits, Metadata, read_exif, read_image, read_probe, sniff};
use crate::remote::UrlBase;
use crate::signing::Signer;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `media_path` of the device family, and grant prefixes: an accepted path is exactly the
/// input, absolute, without empty, `.` or `..` segments or control characters, and lies
/// under a prefix only segment-wise.
pub fn media_path(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let (prefix, raw) = input.split_once('\n').unwrap_or(("/", input));
    let Ok(path) = MediaPath::parse(raw) else { return };
    assert_eq!(path.as_str(), raw);
    assert!(raw.starts_with('/') && raw.len() > 1 && raw.len() <= 4096);
    assert!(!raw.chars().any(char::is_control));
    assert!(raw[1..].split('/').all(|s| !matches!(s, "" | "." | "..")), "{raw:?}");
    assert_eq!(MediaPath::parse(path.as_str()).ok(), Some(path.clone()));
    assert!(path.is_under(&MediaPath::root()) && path.is_under(&path));
    if let Ok(prefix) = MediaPath::parse_prefix(prefix) {
        let under = path.is_under(&prefix);
        let segment_wise = prefix.as_str() == "/"
            || raw == prefix.as_str()
            || raw.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('/'));
        assert_eq!(under, segment_wise, "{raw:?} under {prefix:?}");
    }
}

/// `Range` of every download: 8 bytes of blob length, then the header. A partial answer
/// lies inside the blob, and the plain forms (`bytes=a-b`, `a-`, `-n`) get what RFC 9110
/// says, worked out here independently.
pub fn range_header(data: &[u8]) {
    let (Some(length), Some(header)) = (data.first_chunk::<8>(), text(data.get(8..).unwrap_or_default())) else {
        return;
    };
    let total = u64::from_le_bytes(*length);
    let answer = ByteRange::resolve(Some(header), total);
    if let RangeRequest::Partial(range) = answer {
        assert!(range.start <= range.end && range.end < total, "{header:?} of {total}: {range:?}");
        assert!(range.len() <= total);
    }
    if let Some(expected) = plain_range(header, total) {
        assert_eq!(answer, expected, "{header:?} of {total}");
    }
}

/// The answer to `bytes=a-b`, `bytes=a-` or `bytes=-n` written with digits only; `None` for
/// any other spelling.
fn plain_range(header: &str, total: u64) -> Option<RangeRequest> {
    let (first, last) = header.strip_prefix("bytes=")?.split_once('-')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(last) || (first.is_empty() && last.is_empty()) {
        return None;
    }
    let part = |start: u64, end: u64| RangeRequest::Partial(ByteRange { start, end });
    Some(match (first.parse::<u64>().ok(), last.parse::<u64>().ok(), first.is_empty(), last.is_empty()) {
        // a suffix: the last n bytes
        (_, Some(0), true, _) => RangeRequest::Unsatisfiable,
        (_, Some(n), true, _) if total > 0 => part(total - n.min(total), total - 1),
        (_, Some(_), true, _) => RangeRequest::Unsatisfiable,
        (Some(a), _, _, true) if a < total => part(a, total - 1),
        (Some(_), _, _, true) => RangeRequest::Unsatisfiable,
        (Some(a), Some(b), _, _) if a <= b && a < total => part(a, b.min(total - 1)),
        (Some(a), Some(b), _, _) if a <= b => RangeRequest::Unsatisfiable,
        // a reversed range or a number past u64 is ignored: the whole body
        _ => RangeRequest::Full,
    })
}

/// Signed URLs: a received request line never panics and, without the key, never checks out;
/// a URL the signer made checks out with exactly its parameters, and any one changed
/// character (method, path, query or signature) makes it invalid.
pub fn signed_url(data: &[u8]) {
    let signer = Signer::new(b"the fuzzing key".to_vec());
    let Some(input) = text(data) else { return };
    let mut lines = input.splitn(3, '\n');
    let (method, path, query) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""), lines.next());
    if let Ok(verified) = signer.verify(method, path, query, &["folder_id"]) {
        // reachable only from a committed seed the signer made: what was appended is one
        // allowed parameter at most, and the URL has not expired
        let appended = query.and_then(|q| q.split_once("&sig=")).map(|(_, rest)| &rest[64..]).unwrap_or("");
        assert!(appended.is_empty() || (appended.starts_with("&folder_id=") && appended.matches('&').count() == 1));
        assert!(verified.expires >= crate::clock::now_secs());
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(input.as_bytes())
        .into_owned()
        // names are the targets' own constants (plain words); values are anything a client sends
        .filter(|(name, _)| is_plain_word(name) && name != "expires" && name != "sig")
        .take(4)
        .collect();
    let borrowed: Vec<(&str, String)> = params.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let method = ["GET", "PUT", "POST"][data.len() % 3];
    let path = "/signed/blob";
    let expires = 4_102_444_800; // 2100-01-01
    let url = signer.sign("", method, path, &borrowed, expires);
    let query = url.split_once('?').map(|(_, q)| q).expect("a signed URL has a query");
    let verified = signer.verify(method, path, Some(query), &[]).expect("a URL the signer made checks out");
    for (name, _) in &params {
        let first = params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(verified.get(name), first, "{name} of {url}");
    }
    // one character changed anywhere in the query, the method or the path
    let at = data.iter().map(|b| *b as usize).sum::<usize>() % query.len();
    let mut tampered = query.as_bytes().to_vec();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ASCII stays ASCII");
    assert!(signer.verify(method, path, Some(&tampered), &[]).is_err(), "{tampered} checked out");
    assert!(signer.verify("DELETE", path, Some(query), &[]).is_err());
    assert!(signer.verify(method, "/signed/blob/x", Some(query), &[]).is_err());
}

fn is_plain_word(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `index.json` of a gallery pull source: every event it yields names a file under the
/// source (never a URL elsewhere), with a size a catalog column holds.
pub fn index_json(data: &[u8]) {
    let base = UrlBase::parse("http://camera.example/pull").expect("a base");
    let Ok(events) = crate::gallery::index_events(data, &base, UserId(1), DeviceId(1)) else { return };
    for event in events {
        let url = base.resolve(&event.name).expect("only names under the source become events");
        // judged apart from UrlBase: below the base, no dot segment or separator in any decoding
        let rest = url.as_str().strip_prefix("http://camera.example/pull/");
        let rest = rest.unwrap_or_else(|| panic!("{} resolved outside the source: {url}", event.name));
        for segment in rest.split('/') {
            let mut decoded = segment.to_owned();
            for _ in 0..4 {
                decoded = percent_encoding::percent_decode_str(&decoded).decode_utf8_lossy().into_owned();
                let bad = matches!(decoded.as_str(), "." | "..") || decoded.contains(['/', '\\']);
                assert!(!bad, "{} names {segment:?} in {url}", event.name);
            }
        }
        assert!(event.size <= crate::domain::MAX_BLOB_SIZE);
        let nanos = i128::from(event.created_ms) * 1_000_000;
        assert!(time::OffsetDateTime::from_unix_timestamp_nanos(nanos).is_ok(), "{} has no date", event.created_ms);
    }
}

/// `ferry.toml`: any text is read or refused with a message, never a panic.
pub fn config_file(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let Ok(layer) = layer_from_toml(input) else { return };
    if let Ok(config) = Config::from_layer(&layer) {
        assert!(config.media_workers >= 1 && config.thumbnail_size >= 1);
    }
}

/// Hostile image files through media processing, as the media job reads them: a thumbnail
/// made is within the configured side, no larger than the image, and itself a readable JPEG.
pub fn image_file(data: &[u8]) {
    let _ = sniff(data, None);
    const SIDE: u32 = 320;
    match Class::of(data) {
        Class::Decodable(format) => {
            let (_, decoded) = read_image(data, format, SIDE, Metadata::default());
            // the decoder limits hold: an image that claims more than they allow is refused
            // before it is decoded (its header alone says so)
            let claimed = image::ImageReader::with_format(std::io::Cursor::new(data), format).into_dimensions();
            if let Ok((width, height)) = claimed {
                let limits = Limits::default();
                let over =
                    width.max(height) > limits.max_side || u64::from(width) * u64::from(height) > limits.max_alloc;
                assert!(!over || decoded.is_err(), "a {width}×{height} image was decoded past the limits");
            }
            let Ok(decoded) = decoded else { return };
            let thumb = &decoded.thumbnail;
            assert!(thumb.width >= 1 && thumb.height >= 1 && thumb.width.max(thumb.height) <= SIDE);
            assert!(thumb.width <= decoded.width.max(decoded.height));
            let again = crate::media::decode_image(&thumb.jpeg, image::ImageFormat::Jpeg, SIDE, Default::default())
                .expect("a thumbnail is a readable JPEG");
            assert_eq!((again.width, again.height), (thumb.width, thumb.height));
        }
        Class::OtherImage(_) | Class::Video(_) => {
            read_exif(data, &mut Metadata::default());
        }
        Class::Other => {}
    }
}

/// ffprobe's JSON about a hostile video (its tags are the file's): the facts kept are numbers
/// a viewer can show — finite, in range — and a capture time that parses.
pub fn video_probe(data: &[u8]) {
    let Ok(probe) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut meta = Metadata::default();
    read_probe(&probe, &mut meta);
    if let Some(duration) = meta.duration {
        assert!(duration.is_finite() && duration >= 0.0);
    }
    for side in [meta.width, meta.height].into_iter().flatten() {
        assert!((1..=1_000_000).contains(&side));
    }
    if let Some(gps) = meta.gps {
        assert!(gps.lat.abs() <= 90.0 && gps.lon.abs() <= 180.0 && gps.alt.is_none_or(f64::is_finite));
    }
    if let Some(captured) = &meta.captured {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        assert!(time::OffsetDateTime::parse(captured, rfc3339).is_ok());
    }
}

//! Media type from magic numbers (the first bytes the pipeline keeps), falling back to the
//! file name's extension.

use crate::domain::MediaType;

/// A gallery media type and a MIME content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub media_type: MediaType,
    pub content_type: String,
}

/// Sniffs `head` (the first bytes of a file); `name` helps when the bytes say nothing.
pub fn sniff(head: &[u8], name: Option<&str>) -> Sniffed {
    if let Some(kind) = infer::get(head) {
        let mime = kind.mime_type();
        let media_type = match kind.matcher_type() {
            infer::MatcherType::Image => MediaType::Image,
            infer::MatcherType::Video => MediaType::Video,
            infer::MatcherType::Audio => MediaType::Audio,
            infer::MatcherType::Doc | infer::MatcherType::Book => MediaType::Document,
            _ if mime == "application/pdf" || mime == "application/rtf" => MediaType::Document,
            _ => MediaType::Other,
        };
        return Sniffed { media_type, content_type: mime.to_owned() };
    }
    by_extension(name)
}

fn by_extension(name: Option<&str>) -> Sniffed {
    let ext = name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let (media_type, content_type) = match ext.as_str() {
        "jpg" | "jpeg" => (MediaType::Image, "image/jpeg"),
        "png" => (MediaType::Image, "image/png"),
        "gif" => (MediaType::Image, "image/gif"),
        "webp" => (MediaType::Image, "image/webp"),
        "heic" => (MediaType::Image, "image/heic"),
        "heif" => (MediaType::Image, "image/heif"),
        "mp4" => (MediaType::Video, "video/mp4"),
        "mov" => (MediaType::Video, "video/quicktime"),
        "webm" => (MediaType::Video, "video/webm"),
        "mp3" => (MediaType::Audio, "audio/mpeg"),
        "wav" => (MediaType::Audio, "audio/wav"),
        "pdf" => (MediaType::Document, "application/pdf"),
        "txt" => (MediaType::Document, "text/plain"),
        _ => (MediaType::Other, "application/octet-stream"),
    };
    Sniffed { media_type, content_type: content_type.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_win_over_names() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
        assert_eq!(
            sniff(&jpeg, Some("clip.mp4")),
            Sniffed { media_type: MediaType::Image, content_type: "image/jpeg".into() }
        );
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        assert_eq!(sniff(&png, None).media_type, MediaType::Image);
        let mp4 = [0, 0, 0, 0x18, b'f', b't', b'y', b'p', b'm', b'p', b'4', b'2', 0, 0, 0, 0];
        assert_eq!(sniff(&mp4, None).media_type, MediaType::Video);
        assert_eq!(sniff(b"%PDF-1.7\n", None).media_type, MediaType::Document);
        assert_eq!(sniff(b"ID3\x04\x00\x00\x00\x00\x00\x00", None).media_type, MediaType::Audio);
    }

    #[test]
    fn unknown_bytes_fall_back_to_the_extension_then_other() {
        assert_eq!(sniff(b"plain words", Some("notes.TXT")).media_type, MediaType::Document);
        assert_eq!(sniff(b"\x00\x01\x02", Some("blob")).media_type, MediaType::Other);
    }
}

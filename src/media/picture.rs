//! Still images: decoding with limits (so a decompression bomb fails before it allocates),
//! a thumbnail bounded on its long side, turned upright by the file's orientation, as JPEG.
//! Runs on a blocking thread; the caller catches panics (a decoder bug fails one job).
//!
//! A JPEG is decoded "shrink on load": at the smallest DCT scale (1/8, 1/4, 1/2) whose long
//! side still covers the thumbnail, straight from the coefficients — a 12-megapixel photo's
//! 320 px thumbnail needs a 500 px decode, not 12 million pixels (what libvips does).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use super::{Unreadable, exif_thumbnail};

/// Bounds on what one decode may claim.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest side accepted, in pixels.
    pub max_side: u32,
    /// Largest decoded image, in bytes (width × height × bytes per pixel).
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // 512 MiB holds a 170-megapixel RGB image; more is a bomb or not a photo
        Self { max_side: 65_535, max_alloc: 512 << 20 }
    }
}

/// A generated thumbnail: JPEG bytes and their size in pixels.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// What decoding an image gave.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Size as displayed (after the orientation is applied).
    pub width: u32,
    pub height: u32,
    pub thumbnail: Thumbnail,
}

const JPEG_QUALITY: u8 = 82;

/// Decodes `bytes` as `format` within `limits` and makes a thumbnail whose long side is at
/// most `side` pixels. Errors are reasons people can read.
pub fn decode_image(bytes: &[u8], format: ImageFormat, side: u32, limits: Limits) -> Result<Decoded, Unreadable> {
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Unreadable("the jpeg is truncated: its data ends before the end-of-image marker".into()));
    }
    let shrunk = match format {
        ImageFormat::Jpeg => jpeg_shrunk_on_load(bytes, side, limits)?,
        _ => None,
    };
    let was_shrunk = shrunk.is_some();
    let (image, width, height, orientation) = match shrunk {
        Some(shrunk) => shrunk,
        None => decode_whole(bytes, format, limits)?,
    };
    // never enlarged: a picture already within the bound keeps its size. `thumbnail` (area
    // averaging) suits a large reduction; what is left after shrink-on-load is at most 2×,
    // where it would alias, so a filtered resize finishes the job.
    let fits = image.width() <= side && image.height() <= side;
    let mut small = match (fits, was_shrunk) {
        (true, _) => image,
        (false, true) => image.resize(side, side, FilterType::Triangle),
        (false, false) => image.thumbnail(side, side),
    };
    small.apply_orientation(orientation);
    let rgb = flatten(small);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| Unreadable(format!("the thumbnail could not be encoded: {e}")))?;
    let turned = matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let (width, height) = if turned { (height, width) } else { (width, height) };
    Ok(Decoded { width, height, thumbnail: Thumbnail { width: rgb.width(), height: rgb.height(), jpeg } })
}

/// An image with its stored size and orientation.
type Pixels = (DynamicImage, u32, u32, Orientation);

/// The refusal of an image whose declared size is over the limits, before it is decoded.
fn over_limits(name: &str, width: u32, height: u32, bytes_per_pixel: u64, limits: Limits) -> Option<Unreadable> {
    let decoded = u64::from(width) * u64::from(height) * bytes_per_pixel;
    if width > limits.max_side || height > limits.max_side {
        return Some(Unreadable(format!(
            "the {name} declares {width}×{height} pixels, over the longest side of {} pixels",
            limits.max_side
        )));
    }
    (decoded > limits.max_alloc).then(|| {
        Unreadable(format!(
            "the {name} declares {width}×{height} pixels, over the decoding limit of {} MiB",
            limits.max_alloc >> 20
        ))
    })
}

/// A JPEG decoded at the smallest DCT scale whose long side still covers `side` — or, when the
/// camera embedded a thumbnail that can stand for it (`exif_thumbnail`), that one instead;
/// `None` for what this decoder leaves to the general one.
fn jpeg_shrunk_on_load(bytes: &[u8], side: u32, limits: Limits) -> Result<Option<Pixels>, Unreadable> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(|e| Unreadable(format!("not a readable jpg: {e}")))?;
    let Some((width, height, channels)) = decodable(&decoder, limits)? else { return Ok(None) };
    // (an EXIF block after the frame header is only seen once the photo is decoded: it carries
    // no thumbnail for this path, and its orientation is read below)
    let embedded = decoder.exif_data().and_then(exif_thumbnail::embedded_jpeg);
    let image = match embedded.and_then(|jpeg| embedded_image(&jpeg, (width, height), side, limits)) {
        Some(image) => Some(image),
        None => decode_scaled(&mut decoder, channels, side, limits)?,
    };
    // the embedded thumbnail is turned by the photo's orientation, like the photo
    let orientation = decoder.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    Ok(image.map(|image| (image, width, height, orientation)))
}

/// A JPEG's size and samples per pixel (after `read_info`), when this decoder takes it and it is
/// within `limits`; `None` for CMYK, 16-bit samples and lossless JPEG (which it would decode at
/// full size whatever the scale, past the limits counted here).
fn decodable<R: std::io::Read>(
    decoder: &jpeg_decoder::Decoder<R>,
    limits: Limits,
) -> Result<Option<(u32, u32, u64)>, Unreadable> {
    let Some(info) = decoder.info() else { return Ok(None) };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        _ => return Ok(None),
    };
    // a progressive JPEG keeps every coefficient of the full image (2 bytes each) until its last
    // scan, whatever the output scale: counted so, a bomb is refused before it allocates
    let held = match info.coding_process {
        jpeg_decoder::CodingProcess::DctSequential => channels,
        jpeg_decoder::CodingProcess::DctProgressive => channels * 2,
        jpeg_decoder::CodingProcess::Lossless => return Ok(None),
    };
    match over_limits("jpg", width, height, held, limits) {
        Some(refusal) => Err(refusal),
        None => Ok(Some((width, height, channels))),
    }
}

/// Decodes at the smallest DCT scale whose long side still covers `side`.
fn decode_scaled<R: std::io::Read>(
    decoder: &mut jpeg_decoder::Decoder<R>,
    channels: u64,
    side: u32,
    limits: Limits,
) -> Result<Option<DynamicImage>, Unreadable> {
    let broken = |e: jpeg_decoder::Error| Unreadable(format!("not a readable jpg: {e}"));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    let request = u16::try_from(side).unwrap_or(u16::MAX);
    let (scaled_width, scaled_height) = decoder.scale(request, request).map_err(broken)?;
    let pixels = decoder.decode().map_err(broken)?;
    let (w, h) = (u32::from(scaled_width), u32::from(scaled_height));
    if pixels.len() as u64 != u64::from(w) * u64::from(h) * channels {
        return Ok(None); // not the scaled image asked for: leave it to the general decoder
    }
    let short = || Unreadable("the jpg decoded to fewer pixels than it declares".into());
    Ok(Some(match channels {
        1 => DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels).ok_or_else(short)?),
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?),
    }))
}

/// The embedded thumbnail `jpeg` decoded for a `photo` (width, height) thumbnail of `side`, if it
/// can stand for it; anything wrong with it only means the photo is decoded instead.
fn embedded_image(jpeg: &[u8], photo: (u32, u32), side: u32, limits: Limits) -> Option<DynamicImage> {
    let decode = || {
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(jpeg));
        decoder.read_info().ok()?;
        let (width, height, channels) = decodable(&decoder, limits).ok()??;
        if !exif_thumbnail::stands_for(photo.0, photo.1, width, height, side) || !jpeg_is_complete(jpeg) {
            return None;
        }
        decode_scaled(&mut decoder, channels, side, limits).ok()?
    };
    // a decoder bug met in a camera's thumbnail is no reason to fail the photo
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).ok().flatten()
}

/// Any supported image, decoded whole.
fn decode_whole(bytes: &[u8], format: ImageFormat, limits: Limits) -> Result<Pixels, Unreadable> {
    let name = format.extensions_str().first().copied().unwrap_or("image");
    let broken = |e: image::ImageError| Unreadable(format!("not a readable {name}: {e}"));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(limits.max_side);
    bounds.max_image_height = Some(limits.max_side);
    bounds.max_alloc = Some(limits.max_alloc);
    reader.limits(bounds);
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    // Not every decoder counts its output against max_alloc: refuse by declared size first.
    if decoder.total_bytes() > limits.max_alloc {
        return Err(Unreadable(format!(
            "the {name} declares {width}×{height} pixels, over the decoding limit of {} MiB",
            limits.max_alloc >> 20
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(broken)?;
    Ok((image, width, height, orientation))
}

/// Whether a JPEG runs to its end-of-image marker. The JPEG decoder fills a picture cut
/// off mid-way with gray rather than failing; a thumbnail of half a photo would hide that
/// the file is broken. Segments are skipped by their lengths (an embedded EXIF thumbnail's
/// own end marker does not count) and entropy-coded data is scanned to the next marker. An end
/// marker before any scan is no picture either (nothing but headers and an EXIF thumbnail).
fn jpeg_is_complete(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let (mut i, mut scanned) = (2, false);
    loop {
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1; // fill bytes before a marker
        }
        let Some(&marker) = b.get(i) else { return false };
        i += 1;
        match marker {
            0xD9 => return scanned,
            0x01 | 0xD0..=0xD7 => continue, // markers without a segment
            _ => {}
        }
        let Some(len) = b.get(i..i + 2).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) else {
            return false;
        };
        i += len;
        if marker != 0xDA {
            continue;
        }
        scanned = true;
        // after a start of scan: entropy-coded data up to the next real marker
        loop {
            while i < b.len() && b[i] != 0xFF {
                i += 1;
            }
            match b.get(i + 1) {
                None => return false,
                Some(0x00 | 0xD0..=0xD7) => i += 2, // a stuffed 0xFF byte, a restart marker
                Some(0xFF) => i += 1,
                Some(_) => break,
            }
        }
    }
}

/// RGB for JPEG: transparency is laid over white (what a gallery page shows behind it).
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn thumbnails_fit_the_long_side_and_keep_the_aspect() {
        let wide = DynamicImage::new_rgb8(1000, 500);
        let done = decode_image(&encoded(&wide, ImageFormat::Png), ImageFormat::Png, 320, Limits::default()).unwrap();
        assert_eq!((done.width, done.height), (1000, 500));
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (320, 160));
        assert_eq!(&done.thumbnail.jpeg[..2], &[0xFF, 0xD8]);
        let tiny = DynamicImage::new_rgb8(40, 30);
        let done = decode_image(&encoded(&tiny, ImageFormat::Bmp), ImageFormat::Bmp, 320, Limits::default()).unwrap();
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (40, 30), "never enlarged");
    }

    #[test]
    fn a_large_jpeg_is_decoded_shrunk_and_still_fits_exactly() {
        let wide = DynamicImage::new_rgb8(2400, 1200);
        let jpeg = encoded(&wide, ImageFormat::Jpeg);
        // 1/8 would give 300 px, short of 320: decoded at 1/4 (600×300), then resized
        let (image, width, height, _) = jpeg_shrunk_on_load(&jpeg, 320, Limits::default()).unwrap().unwrap();
        assert_eq!((image.width(), image.height(), width, height), (600, 300, 2400, 1200));
        let done = decode_image(&jpeg, ImageFormat::Jpeg, 320, Limits::default()).unwrap();
        assert_eq!((done.width, done.height), (2400, 1200));
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (320, 160));
        let gray = encoded(&DynamicImage::new_luma8(1000, 2000), ImageFormat::Jpeg);
        let done = decode_image(&gray, ImageFormat::Jpeg, 320, Limits::default()).unwrap();
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (160, 320));
        let tight = Limits { max_side: 2000, max_alloc: 512 << 20 };
        assert!(decode_image(&jpeg, ImageFormat::Jpeg, 320, tight).unwrap_err().0.contains("2400×1200"));
    }

    #[test]
    fn tiny_jpegs_declaring_huge_images_are_refused_before_they_allocate() {
        // 57 bytes of lossless JPEG declaring 23000×23000, 150 of progressive declaring 10000²
        for bomb in [
            include_bytes!("../../tests/fixtures/lossless-23000px.jpg").as_slice(),
            include_bytes!("../../tests/fixtures/progressive-10000px.jpg").as_slice(),
        ] {
            assert!(decode_image(bomb, ImageFormat::Jpeg, 320, Limits::default()).is_err());
        }
    }

    #[test]
    fn a_cut_off_jpeg_is_refused() {
        let image = DynamicImage::new_rgb8(64, 64);
        let whole = encoded(&image, ImageFormat::Jpeg);
        assert!(jpeg_is_complete(&whole));
        let mut trailing = whole.clone();
        trailing.extend(b"trailer written by a phone");
        assert!(jpeg_is_complete(&trailing));
        for cut in [whole.len() - 2, whole.len() / 2, 3] {
            assert!(!jpeg_is_complete(&whole[..cut]), "cut at {cut}");
        }
        let err = decode_image(&whole[..whole.len() / 2], ImageFormat::Jpeg, 320, Limits::default()).unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
    }

    #[test]
    fn transparency_is_laid_over_white() {
        let clear = DynamicImage::new_rgba8(4, 4);
        let rgb = flatten(clear);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn declared_sizes_over_the_limit_are_refused_before_decoding() {
        let image = DynamicImage::new_rgb8(300, 300);
        let bytes = encoded(&image, ImageFormat::Png);
        let tight = Limits { max_side: 65_535, max_alloc: 100_000 };
        let err = decode_image(&bytes, ImageFormat::Png, 320, tight).unwrap_err();
        assert!(err.0.contains("300×300") || err.0.contains("limit"), "{err}");
        let narrow = Limits { max_side: 200, max_alloc: 512 << 20 };
        assert!(decode_image(&bytes, ImageFormat::Png, 320, narrow).is_err());
    }
}

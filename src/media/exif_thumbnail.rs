//! The thumbnail a camera embeds in a JPEG's EXIF (IFD1, a small JPEG of its own), as a fast
//! path for the `media_process` job's thumbnail: when it covers the configured size, decoding
//! those few KiB replaces decoding the photo at all.
//!
//! Most cameras embed 160×120, under the default 320 px, so it mostly serves a server whose
//! `FERRY_THUMBNAIL_SIZE` is 160 or less, or cameras and tools that embed a larger one. It is
//! taken only when it has the photo's own shape, within a pixel: a 4:3 thumbnail letterboxed
//! into a 3:2 photo, or one an editor left from before a crop, is not the photo and is not
//! used (an edit that keeps the shape and leaves a stale thumbnail cannot be told apart; such
//! a tool writes a wrong thumbnail for every viewer that trusts EXIF).

use exif::{In, Tag};

/// The JPEG bytes of the thumbnail in `exif` (an APP1 payload from its TIFF header on), if it
/// declares one that lies wholly inside it.
pub(super) fn embedded_jpeg(exif: &[u8]) -> Option<Vec<u8>> {
    let exif = exif::Reader::new().read_raw(exif.to_vec()).ok()?;
    let place = |tag| exif.get_field(tag, In::THUMBNAIL)?.value.get_uint(0).and_then(|v| usize::try_from(v).ok());
    let (offset, length) = (place(Tag::JPEGInterchangeFormat)?, place(Tag::JPEGInterchangeFormatLength)?);
    let jpeg = exif.buf().get(offset..offset.checked_add(length)?)?;
    jpeg.starts_with(&[0xFF, 0xD8]).then(|| jpeg.to_vec())
}

/// Whether a `thumb_width`×`thumb_height` embedded thumbnail can stand for a `width`×`height`
/// photo's thumbnail of long side `side`: the photo is larger than that (else decoding it is
/// cheap and exact), the embedded one is at least that large (never enlarged) and no larger
/// than the photo (a few crafted KiB declaring more would only add work), and both have one
/// shape — the embedded one's sides are the photo's scaled, give or take a pixel.
pub(super) fn stands_for(width: u32, height: u32, thumb_width: u32, thumb_height: u32, side: u32) -> bool {
    let long = |w: u32, h: u32| w.max(h);
    let (w, h, tw, th) = (u64::from(width), u64::from(height), u64::from(thumb_width), u64::from(thumb_height));
    long(width, height) > side
        && long(thumb_width, thumb_height) >= side
        && long(thumb_width, thumb_height) <= long(width, height)
        && thumb_width.min(thumb_height) > 0
        // |tw/th − w/h| within a pixel of the thumbnail: |tw·h − th·w| ≤ max(w, h)
        && (tw * h).abs_diff(th * w) <= w.max(h)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use exif::experimental::Writer;
    use exif::{Field, Value};
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::media::{Limits, decode_image};

    fn jpeg_of(width: u32, height: u32, colour: [u8; 3]) -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, Rgb(colour)));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// A `width`×`height` blue photo whose EXIF carries `orientation` and a red thumbnail.
    fn camera_jpeg(width: u32, height: u32, thumb: (u32, u32), orientation: u32) -> Vec<u8> {
        with_exif_thumbnail(&jpeg_of(width, height, [0, 0, 220]), &jpeg_of(thumb.0, thumb.1, [220, 0, 0]), orientation)
    }

    /// `photo` with an EXIF block carrying `orientation` and `embedded` as its thumbnail.
    fn with_exif_thumbnail(photo: &[u8], embedded: &[u8], orientation: u32) -> Vec<u8> {
        let turn = Field { tag: Tag::Orientation, ifd_num: In::PRIMARY, value: Value::Short(vec![orientation as u16]) };
        let mut writer = Writer::new();
        writer.push_field(&turn);
        writer.set_jpeg(embedded, In::THUMBNAIL);
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        let tiff = tiff.into_inner();
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend(u16::try_from(tiff.len() + 8).unwrap().to_be_bytes());
        out.extend(b"Exif\0\0");
        out.extend(tiff);
        out.extend(&photo[2..]);
        out
    }

    /// Whether the thumbnail's middle pixel is red (the embedded thumbnail) or blue (the photo).
    fn came_from_embedded(thumbnail: &[u8]) -> bool {
        let rgb = image::load_from_memory_with_format(thumbnail, ImageFormat::Jpeg).unwrap().to_rgb8();
        let [r, _, b] = rgb.get_pixel(rgb.width() / 2, rgb.height() / 2).0;
        assert!(r.abs_diff(b) > 100, "neither red nor blue: {r} {b}");
        r > b
    }

    #[test]
    fn a_large_enough_embedded_thumbnail_of_the_same_shape_is_used_turned_upright() {
        let photo = camera_jpeg(2400, 1800, (320, 240), 1);
        let done = decode_image(&photo, ImageFormat::Jpeg, 160, Limits::default()).unwrap();
        assert_eq!((done.width, done.height), (2400, 1800), "the photo's own size is reported");
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (160, 120));
        assert!(came_from_embedded(&done.thumbnail.jpeg));
        // exactly the size asked for: used as it is
        let done = decode_image(&photo, ImageFormat::Jpeg, 320, Limits::default()).unwrap();
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (320, 240));
        assert!(came_from_embedded(&done.thumbnail.jpeg));
        // the photo's orientation turns the embedded thumbnail as it turns the photo
        let turned = camera_jpeg(2400, 1800, (320, 240), 6);
        let done = decode_image(&turned, ImageFormat::Jpeg, 160, Limits::default()).unwrap();
        assert_eq!((done.width, done.height, done.thumbnail.width, done.thumbnail.height), (1800, 2400, 120, 160));
        assert!(came_from_embedded(&done.thumbnail.jpeg));
    }

    #[test]
    fn a_small_or_differently_shaped_embedded_thumbnail_is_passed_over() {
        // smaller than the configured size: never enlarged, the photo is decoded
        let photo = camera_jpeg(2400, 1800, (160, 120), 1);
        let done = decode_image(&photo, ImageFormat::Jpeg, 320, Limits::default()).unwrap();
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (320, 240));
        assert!(!came_from_embedded(&done.thumbnail.jpeg));
        // a 4:3 thumbnail of a 3:2 photo (letterboxed, or from before a crop)
        let cropped = camera_jpeg(2400, 1600, (320, 240), 1);
        let done = decode_image(&cropped, ImageFormat::Jpeg, 160, Limits::default()).unwrap();
        assert_eq!((done.thumbnail.width, done.thumbnail.height), (160, 107));
        assert!(!came_from_embedded(&done.thumbnail.jpeg));
        // over the limits: refused as before, whatever the thumbnail
        let tight = Limits { max_side: 2000, max_alloc: 512 << 20 };
        assert!(decode_image(&photo, ImageFormat::Jpeg, 160, tight).is_err());
    }

    #[test]
    fn a_broken_embedded_thumbnail_falls_back_to_the_photo_and_a_broken_photo_is_still_refused() {
        let photo = jpeg_of(2400, 1800, [0, 0, 220]);
        let thumb = jpeg_of(320, 240, [220, 0, 0]);
        let mut garbled = thumb.clone();
        garbled.truncate(thumb.len() / 2);
        // (entropy-coded data scrambled in place decodes to noise without an error, from the
        // photo as from its thumbnail: not something either path can tell)
        for (what, embedded) in [("cut short", garbled), ("not a jpeg", b"\xFF\xD8junk".to_vec())] {
            let file = with_exif_thumbnail(&photo, &embedded, 1);
            let done = decode_image(&file, ImageFormat::Jpeg, 160, Limits::default()).unwrap();
            assert_eq!((done.thumbnail.width, done.thumbnail.height), (160, 120), "{what}");
            assert!(!came_from_embedded(&done.thumbnail.jpeg), "{what}");
        }
        // a good thumbnail does not save a photo cut off, or one with no image data at all
        let file = with_exif_thumbnail(&photo, &thumb, 1);
        assert!(decode_image(&file[..file.len() - 100], ImageFormat::Jpeg, 160, Limits::default()).is_err());
        let scan = photo.windows(2).position(|marker| marker == [0xFF, 0xDA]).unwrap();
        let headers_only = [&file[..file.len() - photo.len() + scan], &[0xFF, 0xD9]].concat();
        assert!(decode_image(&headers_only, ImageFormat::Jpeg, 160, Limits::default()).is_err());
    }

    #[test]
    fn the_shape_allows_a_pixel_of_rounding_and_no_more() {
        assert!(stands_for(4000, 3000, 160, 120, 160));
        assert!(stands_for(4032, 3024, 160, 120, 160));
        assert!(stands_for(6000, 4000, 160, 107, 160), "107 rounds 106.7");
        assert!(!stands_for(6000, 4000, 160, 120, 160), "letterboxed 4:3 in a 3:2 photo");
        assert!(!stands_for(4000, 3000, 160, 120, 320), "too small for 320");
        assert!(!stands_for(300, 200, 300, 200, 320), "the photo itself is small");
        assert!(!stands_for(4000, 3000, 160, 0, 160));
        assert!(!stands_for(400, 300, 4000, 3000, 160), "larger than the photo itself");
    }

    #[test]
    fn a_thumbnail_pointing_outside_the_exif_is_none() {
        let embedded = jpeg_of(32, 24, [0, 0, 0]);
        let upright = Field { tag: Tag::Orientation, ifd_num: In::PRIMARY, value: Value::Short(vec![1]) };
        let mut writer = Writer::new();
        writer.push_field(&upright);
        writer.set_jpeg(&embedded, In::THUMBNAIL);
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        let tiff = tiff.into_inner();
        assert_eq!(embedded_jpeg(&tiff).unwrap(), embedded);
        assert!(embedded_jpeg(&tiff[..tiff.len() - 10]).is_none(), "cut short");
        assert!(embedded_jpeg(b"MM\0*\0\0\0\x08garbage").is_none());
    }
}

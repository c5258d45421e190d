//! Files the media tests make: pictures in any format, JPEGs with EXIF written by hand
//! (a big-endian TIFF block with IFD0, an Exif IFD and a GPS IFD), decompression bombs.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A picture with something in it (gradients and a pattern, so encoders have work).
pub fn picture(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, ((x ^ y) & 0xFF) as u8])
    }))
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: Vec<u8>,
}

pub fn ascii(tag: u16, text: &str) -> Entry {
    let mut value = text.as_bytes().to_vec();
    value.push(0);
    Entry { tag, kind: 2, count: value.len() as u32, value }
}

pub fn short(tag: u16, v: u16) -> Entry {
    Entry { tag, kind: 3, count: 1, value: v.to_be_bytes().to_vec() }
}

pub fn long(tag: u16, v: u32) -> Entry {
    Entry { tag, kind: 4, count: 1, value: v.to_be_bytes().to_vec() }
}

pub fn byte(tag: u16, v: u8) -> Entry {
    Entry { tag, kind: 1, count: 1, value: vec![v] }
}

pub fn rational(tag: u16, parts: &[(u32, u32)]) -> Entry {
    let value = parts.iter().flat_map(|(n, d)| [n.to_be_bytes(), d.to_be_bytes()].concat()).collect();
    Entry { tag, kind: 5, count: parts.len() as u32, value }
}

pub fn ifd_len(entries: &[Entry]) -> usize {
    2 + 12 * entries.len() + 4 + entries.iter().filter(|e| e.value.len() > 4).map(|e| e.value.len()).sum::<usize>()
}

/// One IFD placed at `at` (an offset from the TIFF header), its long values after it.
pub fn ifd(mut entries: Vec<Entry>, at: usize) -> Vec<u8> {
    entries.sort_by_key(|e| e.tag);
    let mut data_at = at + 2 + 12 * entries.len() + 4;
    let (mut out, mut data) = ((entries.len() as u16).to_be_bytes().to_vec(), Vec::<u8>::new());
    for e in &entries {
        out.extend(e.tag.to_be_bytes());
        out.extend(e.kind.to_be_bytes());
        out.extend(e.count.to_be_bytes());
        if e.value.len() <= 4 {
            let mut inline = e.value.clone();
            inline.resize(4, 0);
            out.extend(inline);
        } else {
            out.extend((data_at as u32).to_be_bytes());
            data.extend(&e.value);
            data_at += e.value.len();
        }
    }
    out.extend(0u32.to_be_bytes()); // no next IFD
    out.extend(data);
    out
}

pub fn tiff(mut ifd0: Vec<Entry>, exif: Vec<Entry>, gps: Vec<Entry>) -> Vec<u8> {
    // pointers are inline LONGs, so IFD0's length is known before their values are
    let ifd0_len = ifd_len(&ifd0) + 2 * 12;
    let exif_at = 8 + ifd0_len;
    let gps_at = exif_at + ifd_len(&exif);
    ifd0.push(long(0x8769, exif_at as u32));
    ifd0.push(long(0x8825, gps_at as u32));
    let mut out = b"MM\0\x2A\0\0\0\x08".to_vec();
    out.extend(ifd(ifd0, 8));
    out.extend(ifd(exif, exif_at));
    out.extend(ifd(gps, gps_at));
    out
}

/// `jpeg` with an APP1 Exif segment right after its start marker.
pub fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend(&jpeg[2..]);
    out
}

/// A 640×320 JPEG taken turned (orientation 6), with capture time, camera and position.
pub fn photo_with_exif() -> Vec<u8> {
    let ifd0 = vec![ascii(0x010F, "FerryCam"), ascii(0x0110, "FC-1"), short(0x0112, 6)];
    let exif = vec![ascii(0x9003, "2023:07:14 15:16:17"), ascii(0x9011, "+02:00"), ascii(0xA434, "Ferry 35mm f/2")];
    let gps = vec![
        ascii(0x0001, "N"),
        rational(0x0002, &[(48, 1), (51, 1), (3024, 100)]),
        ascii(0x0003, "W"),
        rational(0x0004, &[(2, 1), (17, 1), (402, 10)]),
        byte(0x0005, 0),
        rational(0x0006, &[(71, 2)]),
    ];
    with_exif(&encode(&picture(640, 320), ImageFormat::Jpeg), &tiff(ifd0, exif, gps))
}

pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A real PNG whose header declares `width`×`height` (a decompression bomb's calling card).
pub fn bomb_png(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&picture(8, 8), ImageFormat::Png);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

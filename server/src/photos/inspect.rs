//! What a photo is, judged by its bytes when its upload completes: type by magic bytes, size,
//! whether the file is whole (a JPEG reaches its end marker, a PNG its `IEND` chunk, a WebP its
//! RIFF length), the dimensions and pixel limits read from the header, and the EXIF facts
//! evidence needs. None of that decodes a pixel: it costs microseconds, where decoding a
//! 12-megapixel JPEG's entropy-coded data costs tens of milliseconds.
//!
//! The pixels are decoded once, by the derivative worker (`derive::make`), under
//! `image::Limits`; a photo whose data does not decode becomes `derivatives: "undecodable"`
//! with the integrity flag `photo_undecodable` on its cases, its original kept as it arrived.
//!
//! JPEG, PNG and WebP are decoded. HEIC is recognised and accepted as stored-but-not-decoded:
//! no HEVC decoder is built in, so a HEIC photo gets its EXIF read but no dimensions check, no
//! thumbnail and no preview.

use std::io::Cursor;

use gridline_sync::validation::MAX_PHOTO_BYTES;
use gridline_sync::ErrorCode;
use image::ImageFormat;

use crate::config::PhotosConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Webp,
    Heic,
}

impl Kind {
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Webp => "image/webp",
            Kind::Heic => "image/heic",
        }
    }
    pub fn decoded(self) -> bool {
        !matches!(self, Kind::Heic)
    }
    pub(crate) fn format(self) -> Option<ImageFormat> {
        match self {
            Kind::Jpeg => Some(ImageFormat::Jpeg),
            Kind::Png => Some(ImageFormat::Png),
            Kind::Webp => Some(ImageFormat::WebP),
            Kind::Heic => None,
        }
    }
}

/// The type of a file by its first bytes, whatever its name or declared content type says.
pub fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Kind::Webp)
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        const HEIF_BRANDS: &[&[u8]] = &[
            b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
        ];
        HEIF_BRANDS.contains(&&bytes[8..12]).then_some(Kind::Heic)
    } else {
        None
    }
}

/// Why bytes are not an acceptable photo: an error code and a message for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// EXIF facts, each optional: many photos lack some.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exif {
    /// Capture time in Unix ms (the camera's local time, shifted by `OffsetTimeOriginal` or, if
    /// absent, the configured default offset).
    pub taken_at: Option<i64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub orientation: Option<u16>,
    pub make: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Inspection {
    pub kind: Kind,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub exif: Exif,
}

/// Decoding limits: no side over 64k and at most `max_megapixels`, with room for 16-bit RGBA.
pub fn limits(config: &PhotosConfig) -> image::Limits {
    let max_pixels = (config.max_megapixels * 1e6) as u64;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(65_535);
    limits.max_image_height = Some(65_535);
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    limits
}

/// Checks a whole photo file without decoding its pixels (see the module doc).
pub fn inspect(bytes: &[u8], config: &PhotosConfig) -> Result<Inspection, Rejection> {
    if bytes.len() as u64 > MAX_PHOTO_BYTES {
        return Err(Rejection::new(
            ErrorCode::PhotoTooLarge,
            format!("the photo is larger than {MAX_PHOTO_BYTES} bytes"),
        ));
    }
    let kind = sniff(bytes).ok_or_else(|| {
        Rejection::new(
            ErrorCode::UnsupportedMedia,
            "not a JPEG, PNG, WebP or HEIC image",
        )
    })?;
    let exif = read_exif(bytes, config.exif_default_utc_offset_minutes);
    let Some(format) = kind.format() else {
        let inspection = Inspection {
            kind,
            width: None,
            height: None,
            exif,
        };
        return Ok(inspection);
    };
    let whole = match kind {
        Kind::Jpeg => jpeg_has_end(bytes),
        Kind::Png => png_has_end(bytes),
        Kind::Webp => webp_is_whole(bytes),
        Kind::Heic => true,
    };
    if !whole {
        return Err(Rejection::new(
            ErrorCode::TruncatedImage,
            format!("the {} ends before its image data does", kind.mime()),
        ));
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits(config));
    let (width, height) = reader.into_dimensions().map_err(decode_rejection)?;
    let megapixels = f64::from(width) * f64::from(height) / 1e6;
    if megapixels > config.max_megapixels {
        return Err(Rejection::new(
            ErrorCode::ImageTooLarge,
            format!(
                "{width}×{height} is {megapixels:.1} megapixels; at most {} are accepted",
                config.max_megapixels
            ),
        ));
    }
    Ok(Inspection {
        kind,
        width: Some(width),
        height: Some(height),
        exif,
    })
}

/// The rejection a decoding error stands for: limits, data cut short, or damage.
pub(crate) fn decode_rejection(err: image::ImageError) -> Rejection {
    use image::ImageError;
    match &err {
        ImageError::Limits(_) => Rejection::new(
            ErrorCode::ImageTooLarge,
            format!("the image exceeds the decoding limits: {err}"),
        ),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Rejection::new(
                ErrorCode::TruncatedImage,
                "the image ends before its data does",
            )
        }
        _ => {
            let text = err.to_string().to_ascii_lowercase();
            if text.contains("eof") || text.contains("end of") || text.contains("truncat") {
                Rejection::new(
                    ErrorCode::TruncatedImage,
                    format!("the image is cut short: {err}"),
                )
            } else {
                Rejection::new(
                    ErrorCode::CorruptImage,
                    format!("the image cannot be decoded: {err}"),
                )
            }
        }
    }
}

/// Whether a JPEG reaches its end-of-image marker. Decoders fill a cut-off JPEG with grey
/// rather than fail, so a truncated file is recognised here: walk the marker segments to the
/// first start-of-scan (skipping segments such as the EXIF thumbnail, which has markers of its
/// own), then look for `FF D9`, which cannot occur inside entropy-coded data: from the end
/// backwards, where it nearly always is.
pub fn jpeg_has_end(bytes: &[u8]) -> bool {
    jpeg_scan_start(bytes)
        .and_then(|scan| bytes.get(scan..))
        .is_some_and(|rest| memchr::memmem::rfind(rest, &[0xFF, 0xD9]).is_some())
}

/// Where a JPEG's entropy-coded data begins: just after its first start-of-scan header, found
/// by walking the marker segments from the start. `None` if the walk falls off the file or
/// out of step.
fn jpeg_scan_start(bytes: &[u8]) -> Option<usize> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if marker == 0xDA {
            return Some(i + 2 + len);
        }
        i += 2 + len;
    }
    None
}

/// Whether a PNG reaches its `IEND` chunk: walk the chunks (length, type, data, CRC) from the
/// signature; one that runs past the end means the file was cut.
pub fn png_has_end(bytes: &[u8]) -> bool {
    let mut i = 8;
    while let Some(head) = bytes.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(next) = i.checked_add(12 + len).filter(|&n| n <= bytes.len()) else {
            return false;
        };
        if &head[4..8] == b"IEND" {
            return true;
        }
        i = next;
    }
    false
}

/// Whether a WebP file holds as many bytes as its RIFF header says it has.
pub fn webp_is_whole(bytes: &[u8]) -> bool {
    bytes.get(4..8).is_some_and(|size| {
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        bytes.len() >= size.saturating_add(8)
    })
}

/// Reads EXIF from any container kamadak-exif knows (JPEG, PNG, WebP, HEIF, TIFF). Photos
/// without EXIF, or with damaged EXIF, yield empty facts: EXIF is evidence, not a requirement.
pub fn read_exif(bytes: &[u8], default_offset_minutes: i32) -> Exif {
    use exif::{In, Tag, Value};
    // A JPEG's EXIF segment comes before its image data. Only that part is read: kamadak-exif
    // looks for EXIF in a JPEG without it through all the entropy-coded data, copying it.
    let bytes = match sniff(bytes) {
        Some(Kind::Jpeg) => jpeg_scan_start(bytes)
            .and_then(|scan| bytes.get(..scan))
            .unwrap_or(bytes),
        _ => bytes,
    };
    let Ok(data) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return Exif::default();
    };
    let ascii = |tag: Tag| -> Option<String> {
        let field = data.get_field(tag, In::PRIMARY)?;
        match &field.value {
            Value::Ascii(parts) => parts.first().map(|p| {
                String::from_utf8_lossy(p)
                    .trim_end_matches('\0')
                    .trim()
                    .to_owned()
            }),
            _ => None,
        }
        .filter(|s| !s.is_empty())
    };
    let coordinate = |tag: Tag, reference: Tag, negative: &str| -> Option<f64> {
        let field = data.get_field(tag, In::PRIMARY)?;
        let Value::Rational(parts) = &field.value else {
            return None;
        };
        if parts.len() < 3 || parts.iter().any(|r| r.denom == 0) {
            return None;
        }
        let value = parts[0].to_f64() + parts[1].to_f64() / 60.0 + parts[2].to_f64() / 3600.0;
        let sign = match ascii(reference) {
            Some(r) if r.eq_ignore_ascii_case(negative) => -1.0,
            _ => 1.0,
        };
        Some(sign * value).filter(|v| v.is_finite())
    };
    let taken_at = ascii(Tag::DateTimeOriginal)
        .or_else(|| ascii(Tag::DateTime))
        .and_then(|text| {
            let offset = ascii(Tag::OffsetTimeOriginal)
                .and_then(|o| parse_offset_minutes(&o))
                .unwrap_or(default_offset_minutes);
            exif_time_ms(&text, offset)
        });
    let orientation = data
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u16::try_from(v).ok())
        .filter(|v| (1..=8).contains(v));
    Exif {
        taken_at,
        lat: coordinate(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S")
            .filter(|v| (-90.0..=90.0).contains(v)),
        lon: coordinate(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W")
            .filter(|v| (-180.0..=180.0).contains(v)),
        orientation,
        make: ascii(Tag::Make),
        model: ascii(Tag::Model),
    }
}

/// `+08:00` → 480.
fn parse_offset_minutes(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    Some(sign * (h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?))
}

/// `2024:05:01 10:30:00` at UTC offset `offset_minutes` → Unix ms.
fn exif_time_ms(text: &str, offset_minutes: i32) -> Option<i64> {
    let dt = exif::DateTime::from_ascii(text.as_bytes()).ok()?;
    let date = time::Date::from_calendar_date(
        i32::from(dt.year),
        time::Month::try_from(dt.month).ok()?,
        dt.day,
    )
    .ok()?;
    let t = time::Time::from_hms(dt.hour, dt.minute, dt.second).ok()?;
    let local = time::PrimitiveDateTime::new(date, t);
    let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).ok()?;
    Some(crate::store::ms_from_time(local.assume_offset(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_told_by_their_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Kind::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Kind::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Kind::Webp));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(Kind::Heic));
        assert_eq!(sniff(b"\0\0\0\x18ftypisom\0\0\0\0"), None);
        assert_eq!(sniff(b"%PDF-1.7"), None);
    }

    #[test]
    fn exif_times_and_offsets() {
        assert_eq!(parse_offset_minutes("+08:00"), Some(480));
        assert_eq!(parse_offset_minutes("-03:30"), Some(-210));
        // 2024-05-01 10:30:00 +08:00 is 02:30:00 UTC.
        assert_eq!(
            exif_time_ms("2024:05:01 10:30:00", 480),
            Some(1_714_530_600_000)
        );
    }

    #[test]
    fn a_jpeg_without_its_end_marker_is_truncated() {
        // SOI, a 4-byte APP0, SOS with a 2-byte header, one byte of scan data, EOI.
        let whole = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF,
            0xD9,
        ];
        assert!(jpeg_has_end(&whole));
        assert!(!jpeg_has_end(&whole[..whole.len() - 2]));
        assert!(!jpeg_has_end(&whole[..6]));
    }

    #[test]
    fn a_png_without_its_end_chunk_or_a_short_webp_is_truncated() {
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 48))
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        assert!(png_has_end(&png));
        for cut in [png.len() - 1, png.len() - 12, png.len() / 2, 20, 8] {
            assert!(!png_has_end(&png[..cut]), "cut at {cut}");
        }
        let config = PhotosConfig::default();
        let refused = inspect(&png[..png.len() - 12], &config).err().unwrap();
        assert_eq!(refused.code, ErrorCode::TruncatedImage);
        let mut webp = Vec::new();
        image::DynamicImage::ImageRgba8(image::RgbaImage::new(64, 48))
            .write_to(&mut Cursor::new(&mut webp), ImageFormat::WebP)
            .unwrap();
        assert!(webp_is_whole(&webp));
        assert!(inspect(&webp, &config).is_ok());
        assert!(!webp_is_whole(&webp[..webp.len() - 1]));
        assert!(!webp_is_whole(&webp[..6]));
    }
}

//! What a photo is, judged by its bytes: type by magic bytes, size and pixel limits checked
//! from the header before any pixel is decoded, a decode of all the image data under
//! `image::Limits` (so damaged files and decompression bombs are refused, never a panic; JPEGs
//! at 1/8 scale, see [`inspect`]), and the EXIF facts evidence needs.
//!
//! JPEG, PNG and WebP are decoded. HEIC is recognised and accepted as stored-but-not-decoded:
//! no HEVC decoder is built in, so a HEIC photo gets its EXIF read but no dimensions check, no
//! thumbnail and no preview.

use std::io::Cursor;

use gridline_sync::ErrorCode;
use image::{DynamicImage, ImageFormat};

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
    fn format(self) -> Option<ImageFormat> {
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
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
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

/// Validates a whole photo file. CPU-bound: call it from `spawn_blocking`.
pub fn inspect(bytes: &[u8], config: &PhotosConfig) -> Result<Inspection, Rejection> {
    if bytes.len() as u64 > config.max_bytes {
        return Err(Rejection::new(
            ErrorCode::PhotoTooLarge,
            format!("the photo is larger than {} bytes", config.max_bytes),
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
    if kind == Kind::Jpeg && !jpeg_has_end(bytes) {
        return Err(Rejection::new(
            ErrorCode::TruncatedImage,
            "the JPEG ends before its image data does",
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
    // A JPEG's entropy-coded data is decoded whole at 1/8 size (every block's coefficients are
    // read, only the inverse DCT is smaller), which refuses damaged data at a fraction of a
    // full-size decode's CPU and memory. Whatever that decoder does not take (damaged data, or
    // a coding or colour model it lacks) is judged by the full decode, as any other format. A
    // panic in that decoder counts as "not taken", never as a verdict.
    let reduced = kind == Kind::Jpeg
        && std::panic::catch_unwind(|| super::derive::decode_jpeg_reduced(bytes, config, 1))
            .ok()
            .and_then(Result::ok)
            .flatten()
            .is_some();
    if !reduced {
        full_decode(bytes, format, config)?;
    }
    Ok(Inspection {
        kind,
        width: Some(width),
        height: Some(height),
        exif,
    })
}

/// Decodes the whole image at full size under the decoding limits.
fn full_decode(
    bytes: &[u8],
    format: ImageFormat,
    config: &PhotosConfig,
) -> Result<DynamicImage, Rejection> {
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits(config));
    reader.decode().map_err(decode_rejection)
}

fn decode_rejection(err: image::ImageError) -> Rejection {
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
/// own), then look for `FF D9`, which cannot occur inside entropy-coded data.
pub fn jpeg_has_end(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
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
            let scan = i + 2 + len;
            return bytes
                .get(scan..)
                .is_some_and(|rest| rest.windows(2).any(|w| w == [0xFF, 0xD9]));
        }
        i += 2 + len;
    }
    false
}

/// Reads EXIF from any container kamadak-exif knows (JPEG, PNG, WebP, HEIF, TIFF). Photos
/// without EXIF, or with damaged EXIF, yield empty facts: EXIF is evidence, not a requirement.
pub fn read_exif(bytes: &[u8], default_offset_minutes: i32) -> Exif {
    use exif::{In, Tag, Value};
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

    fn noisy_jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut seed = 0x9E37_79B9_u32;
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed % 48) as u8;
            image::Rgb([(x % 200) as u8 + noise, (y % 200) as u8 + noise, 90 + noise])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    /// The verdict before the reduced decode: the end marker, then a full-size decode.
    fn full_verdict(bytes: &[u8], config: &PhotosConfig) -> bool {
        jpeg_has_end(bytes) && full_decode(bytes, ImageFormat::Jpeg, config).is_ok()
    }

    #[test]
    fn the_reduced_decode_refuses_whatever_the_full_decode_refuses() {
        let config = PhotosConfig::default();
        let good = noisy_jpeg(320, 240);
        assert!(inspect(&good, &config).is_ok());
        // Damage anywhere: headers and tables (which decoders refuse) as well as entropy-coded
        // data (which both decoders mostly decode into other pixels, as libjpeg does).
        let (mut refused, mut both) = (0, 0);
        for i in 0..300_usize {
            let mut bad = good.clone();
            let at = 2 + (i * 7919) % (good.len() - 4);
            bad[at] ^= 1 << (i % 8);
            if i % 5 == 0 {
                // Damage a run of bytes, not one bit.
                let end = (at + 64).min(good.len() - 2);
                bad[at..end]
                    .iter_mut()
                    .for_each(|b| *b = b.wrapping_mul(31));
            }
            let new = inspect(&bad, &config).is_ok();
            let old = full_verdict(&bad, &config);
            assert!(
                !new || old,
                "damage at {at} ({i}) was refused before, accepted now"
            );
            refused += usize::from(!new);
            both += usize::from(!new && !old);
        }
        eprintln!("refused {refused} of 300 damaged copies ({both} by both decoders)");
        assert!(refused > 0);
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
}

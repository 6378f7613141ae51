//! Derivatives: a thumbnail and a review-size preview of a photo, JPEG, with the EXIF
//! orientation applied and no metadata (the encoder writes none). The original is never altered.
//!
//! A JPEG is decoded straight at a reduced size where that is enough for the preview: the
//! decoder runs a 4×4, 2×2 or 1×1 inverse DCT on each 8×8 block instead of the full one (the
//! same shrink-on-load libvips does with libjpeg), so a 12-megapixel photo becomes 2000×1500
//! without ever being 12 megapixels of RGB, and the resampler has a quarter of the pixels to
//! read. PNG, WebP and the JPEGs that decoder does not take (CMYK, 12-bit, arithmetic coding)
//! go through `image` at full size, as before.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};

use gridline_sync::ErrorCode;

use super::inspect::{self, Kind, Rejection};
use crate::config::PhotosConfig;

/// JPEG quality of both derivatives.
const QUALITY: u8 = 85;

pub struct Derivatives {
    pub thumb: Vec<u8>,
    pub preview: Vec<u8>,
}

/// Decodes the original once and makes both sizes; `Ok(Err(_))` when its pixel data cannot be
/// decoded (the verdict that marks a photo undecodable: it will not change on a retry), `Err`
/// for anything else. CPU-bound: call it from `spawn_blocking`.
pub fn make(
    original: &[u8],
    config: &PhotosConfig,
) -> anyhow::Result<Result<Derivatives, Rejection>> {
    let kind = inspect::sniff(original).ok_or_else(|| anyhow::anyhow!("not an image"))?;
    if !kind.decoded() {
        anyhow::bail!("{} is stored but not decoded", kind.mime());
    }
    let rgb = match pixels(original, kind, config) {
        Ok(rgb) => rgb,
        Err(rejection) => return Ok(Err(rejection)),
    };
    from_pixels(rgb, inspect::read_exif(original, 0).orientation, config).map(Ok)
}

/// The pixels of a photo of a decoded `kind`, at least `preview_px` on the longest side where
/// the photo is that big: a JPEG reduced (`decode_jpeg_reduced`) where that decoder takes it,
/// everything else (and any JPEG it does not take, or panics on) at full size through `image`
/// under the decoding limits. `Err`: the data cannot be decoded, or exceeds the limits.
pub fn pixels(bytes: &[u8], kind: Kind, config: &PhotosConfig) -> Result<RgbImage, Rejection> {
    if kind == Kind::Jpeg {
        let reduced =
            std::panic::catch_unwind(|| decode_jpeg_reduced(bytes, config, config.preview_px));
        match reduced {
            Ok(Ok(Some(rgb))) => return Ok(rgb),
            Ok(Err(rejection)) => return Err(rejection),
            Ok(Ok(None)) | Err(_) => {}
        }
    }
    let format = kind.format().ok_or_else(|| {
        Rejection::new(
            ErrorCode::UnsupportedMedia,
            format!("{} is stored but not decoded", kind.mime()),
        )
    })?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(inspect::limits(config));
    reader
        .decode()
        .map(DynamicImage::into_rgb8)
        .map_err(inspect::decode_rejection)
}

/// Both sizes from pixels already decoded (at least `preview_px` on the longest side where the
/// photo is that big), turned by the EXIF `orientation`. CPU-bound: call it from
/// `spawn_blocking`.
pub fn from_pixels(
    rgb: RgbImage,
    orientation: Option<u16>,
    config: &PhotosConfig,
) -> anyhow::Result<Derivatives> {
    let orientation = orientation
        .and_then(|o| u8::try_from(o).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    // The longest side is bounded whichever way the photo is turned, so resizing comes first
    // and only the small image is rotated.
    let preview = fit(rgb, config.preview_px)?;
    let thumb = fit(preview.clone(), config.thumb_px)?;
    Ok(Derivatives {
        thumb: encode(thumb, orientation)?,
        preview: encode(preview, orientation)?,
    })
}

/// The size `(w, h)` scaled so the longest side is at most `max_px` (never up).
fn fitted(w: u32, h: u32, max_px: u32) -> (u32, u32) {
    let longest = w.max(h);
    if longest <= max_px {
        return (w, h);
    }
    let scale = f64::from(max_px) / f64::from(longest);
    let dw = ((f64::from(w) * scale).round() as u32).max(1);
    let dh = ((f64::from(h) * scale).round() as u32).max(1);
    (dw, dh)
}

/// Decodes a JPEG at the smallest of 1/8, 1/4, 1/2 or full size whose longest side still covers
/// `cover_px` (1: the smallest, 1/8). Every block's entropy-coded data is decoded whatever the
/// scale; only the inverse DCT is smaller. The frame header's dimensions are checked against
/// the same limits as a full decode before any pixel is decoded (`Err` beyond them). `None`:
/// this decoder does not take the file (a colour model or coding it lacks, damaged data,
/// anything it cannot parse); the caller decodes it with `image`.
fn decode_jpeg_reduced(
    bytes: &[u8],
    config: &PhotosConfig,
    cover_px: u32,
) -> Result<Option<RgbImage>, Rejection> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    if decoder.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let megapixels = f64::from(w) * f64::from(h) / 1e6;
    if w == 0 || h == 0 || megapixels > config.max_megapixels {
        return Err(Rejection::new(
            ErrorCode::ImageTooLarge,
            format!(
                "{w}×{h} is outside the decoding limits ({} megapixels)",
                config.max_megapixels
            ),
        ));
    }
    let (pw, ph) = fitted(w, h, cover_px.max(1));
    let (Ok(pw), Ok(ph)) = (u16::try_from(pw), u16::try_from(ph)) else {
        return Ok(None);
    };
    let Ok((ow, oh)) = decoder.scale(pw, ph) else {
        return Ok(None);
    };
    let (ow, oh) = (u32::from(ow), u32::from(oh));
    decoder.set_max_decoding_buffer_size(
        usize::try_from(inspect::limits(config).max_alloc.unwrap_or(u64::MAX))
            .unwrap_or(usize::MAX),
    );
    let Ok(pixels) = decoder.decode() else {
        return Ok(None);
    };
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(ow, oh, pixels),
        jpeg_decoder::PixelFormat::L8 => {
            RgbImage::from_raw(ow, oh, pixels.iter().flat_map(|&l| [l, l, l]).collect())
        }
        jpeg_decoder::PixelFormat::L16 | jpeg_decoder::PixelFormat::CMYK32 => None,
    };
    Ok(rgb)
}

/// Scales down so the longest side is at most `max_px` (never up).
fn fit(src: RgbImage, max_px: u32) -> anyhow::Result<RgbImage> {
    let (w, h) = src.dimensions();
    let (dw, dh) = fitted(w, h, max_px);
    if (dw, dh) == (w, h) {
        return Ok(src);
    }
    let source = Image::from_vec_u8(w, h, src.into_raw(), PixelType::U8x3)?;
    let mut target = Image::new(dw, dh, PixelType::U8x3);
    Resizer::new().resize(
        &source,
        &mut target,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
    )?;
    RgbImage::from_raw(dw, dh, target.into_vec())
        .ok_or_else(|| anyhow::anyhow!("resized buffer has the wrong size"))
}

/// Baseline JPEG, 4:2:0, with a JFIF header and nothing else: no EXIF, no ICC, no comments.
fn encode(img: RgbImage, orientation: Orientation) -> anyhow::Result<Vec<u8>> {
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let (w, h) = (u16::try_from(rgb.width())?, u16::try_from(rgb.height())?);
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, QUALITY).encode(
        rgb.as_raw(),
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    fn dims(jpeg: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(jpeg).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn sizes_are_kept_and_never_enlarged() {
        assert_eq!(fitted(4000, 3000, 1600), (1600, 1200));
        assert_eq!(fitted(3000, 4000, 256), (192, 256));
        assert_eq!(fitted(100, 50, 256), (100, 50));
        assert_eq!(fitted(5000, 1, 256), (256, 1));
    }

    #[test]
    fn a_jpeg_is_decoded_reduced_and_both_sizes_come_out() {
        let config = PhotosConfig::default();
        let original = jpeg(4000, 3000);
        let reduced = decode_jpeg_reduced(&original, &config, config.preview_px)
            .unwrap()
            .unwrap();
        // 1/2 is the smallest scale that still covers a 1600-pixel preview.
        assert_eq!(reduced.dimensions(), (2000, 1500));
        let made = make(&original, &config).unwrap().unwrap();
        assert_eq!(dims(&made.preview), (1600, 1200));
        assert_eq!(dims(&made.thumb), (256, 192));
        // A small photo is decoded at full size and not enlarged.
        let small = make(&jpeg(300, 200), &config).unwrap().unwrap();
        assert_eq!(dims(&small.preview), (300, 200));
        assert_eq!(dims(&small.thumb), (256, 171));
    }

    #[test]
    fn a_grey_jpeg_and_a_png_still_work() {
        let config = PhotosConfig::default();
        let grey = image::GrayImage::from_fn(1000, 800, |x, _| image::Luma([(x % 256) as u8]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&grey)
            .unwrap();
        assert_eq!(
            dims(&make(&out, &config).unwrap().unwrap().thumb),
            (256, 205)
        );
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::new(640, 480))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(
            dims(&make(&png, &config).unwrap().unwrap().preview),
            (640, 480)
        );
    }

    #[test]
    fn a_frame_over_the_pixel_limit_is_refused_before_decoding() {
        let config = PhotosConfig {
            max_megapixels: 1.0,
            ..PhotosConfig::default()
        };
        let refused = make(&jpeg(1200, 1000), &config).unwrap().err().unwrap();
        assert_eq!(refused.code, ErrorCode::ImageTooLarge);
        assert!(refused.message.contains("decoding limits"), "{refused:?}");
    }

    fn noisy_jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut seed = 0x9E37_79B9_u32;
        let img = RgbImage::from_fn(w, h, |x, y| {
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

    /// The verdict of a full-size decode alone, as photos were judged before the reduced one.
    fn full_verdict(bytes: &[u8], config: &PhotosConfig) -> bool {
        let mut reader =
            image::ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Jpeg);
        reader.limits(inspect::limits(config));
        inspect::jpeg_has_end(bytes) && reader.decode().is_ok()
    }

    #[test]
    fn the_reduced_decode_refuses_whatever_the_full_decode_refuses() {
        let config = PhotosConfig::default();
        let good = noisy_jpeg(320, 240);
        assert!(pixels(&good, Kind::Jpeg, &config).is_ok());
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
            let new = inspect::jpeg_has_end(&bad) && pixels(&bad, Kind::Jpeg, &config).is_ok();
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
    fn damaged_image_data_passes_the_upload_checks_and_is_found_undecodable_here() {
        let config = PhotosConfig::default();
        let mut bad = noisy_jpeg(320, 240);
        // A second frame header inside the entropy-coded data: the file's structure and header
        // are fine, its data is not (both decoders refuse it).
        let sos = bad.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        bad[sos + 200] = 0xFF;
        bad[sos + 201] = 0xC0;
        let seen = inspect::inspect(&bad, &config).unwrap();
        assert_eq!((seen.width, seen.height), (Some(320), Some(240)));
        let refused = make(&bad, &config).unwrap().err().unwrap();
        assert_eq!(refused.code, ErrorCode::CorruptImage, "{refused:?}");
    }
}

//! Derivatives: a thumbnail and a review-size preview of a photo, JPEG, with the EXIF
//! orientation applied and no metadata (the encoder writes none). The original is never altered.

use std::io::Cursor;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, RgbImage};

use super::inspect;
use crate::config::PhotosConfig;

pub struct Derivatives {
    pub thumb: Vec<u8>,
    pub preview: Vec<u8>,
}

/// Decodes the original once and makes both sizes. CPU-bound: call it from `spawn_blocking`.
pub fn make(original: &[u8], config: &PhotosConfig) -> anyhow::Result<Derivatives> {
    let kind = inspect::sniff(original).ok_or_else(|| anyhow::anyhow!("not an image"))?;
    if !kind.decoded() {
        anyhow::bail!("{} is stored but not decoded", kind.mime());
    }
    let mut reader = image::ImageReader::new(Cursor::new(original)).with_guessed_format()?;
    reader.limits(inspect::limits(config));
    let rgb = reader.decode()?.into_rgb8();
    let orientation = inspect::read_exif(original, 0)
        .orientation
        .and_then(|o| u8::try_from(o).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    // The longest side is bounded whichever way the photo is turned, so resizing comes first
    // and only the small image is rotated.
    let preview = fit(&rgb, config.preview_px)?;
    let thumb = fit(&preview, config.thumb_px)?;
    Ok(Derivatives {
        thumb: encode(thumb, orientation)?,
        preview: encode(preview, orientation)?,
    })
}

/// Scales down so the longest side is at most `max_px` (never up).
fn fit(src: &RgbImage, max_px: u32) -> anyhow::Result<RgbImage> {
    let (w, h) = src.dimensions();
    let longest = w.max(h);
    if longest <= max_px {
        return Ok(src.clone());
    }
    let scale = f64::from(max_px) / f64::from(longest);
    let dw = ((f64::from(w) * scale).round() as u32).max(1);
    let dh = ((f64::from(h) * scale).round() as u32).max(1);
    let source = Image::from_vec_u8(w, h, src.as_raw().clone(), PixelType::U8x3)?;
    let mut target = Image::new(dw, dh, PixelType::U8x3);
    Resizer::new().resize(
        &source,
        &mut target,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
    )?;
    RgbImage::from_raw(dw, dh, target.into_vec())
        .ok_or_else(|| anyhow::anyhow!("resized buffer has the wrong size"))
}

fn encode(img: RgbImage, orientation: Orientation) -> anyhow::Result<Vec<u8>> {
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode(
        rgb.as_raw(),
        rgb.width(),
        rgb.height(),
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

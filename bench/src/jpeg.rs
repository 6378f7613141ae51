//! Photo-sized JPEGs for the upload scenarios, made before the clock starts.
//!
//! One base image is encoded (a phone-like 4:3 picture: gradients, edges and sensor noise,
//! about as many pixels as the size allows at quality 90), then each photo is that image with
//! comment (`COM`) segments after the start marker: valid JPEGs that decode to the same
//! picture, each with its own SHA-256. Every photo's padding has a different length, so no two
//! photos share a byte-aligned block: a store that deduplicates blocks (Garage does) sees
//! distinct data, as it would from distinct camera shots.

use anyhow::{ensure, Context};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// One photo: its bytes and lowercase hex SHA-256.
#[derive(Clone)]
pub struct BenchPhoto {
    pub bytes: Bytes,
    pub sha256: String,
}

/// Room left for padding (the variable part of every photo) under the target size.
const PAD_ROOM: usize = 16 * 1024;

fn encode(width: u32, height: u32, seed: u64) -> anyhow::Result<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        // Smooth scene, a few hard edges, and noise like a phone sensor's in shade.
        let gx = (x * 255 / width.max(1)) as i32;
        let gy = (y * 255 / height.max(1)) as i32;
        let edge = if (x / 97 + y / 61) % 5 == 0 { 60 } else { 0 };
        let n: i32 = rng.gen_range(-18..=18);
        let px = |v: i32| (v + n).clamp(0, 255) as u8;
        image::Rgb([px(gx + edge), px(gy), px((gx + gy) / 2 - edge)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .context("encode the base JPEG")?;
    Ok(out)
}

/// The largest 4:3 image that encodes to at most `size - PAD_ROOM` bytes (about 12 MP for
/// 4 MB, like a phone's): sized from a small sample, then shrunk until it fits.
pub fn base_image(size: usize) -> anyhow::Result<Vec<u8>> {
    ensure!(size >= 64 * 1024, "photos must be at least 64 KiB");
    let budget = size - PAD_ROOM;
    let sample = encode(400, 300, 7)?;
    let bytes_per_px = sample.len() as f64 / (400.0 * 300.0);
    let mut scale = ((budget as f64 * 0.95 / bytes_per_px) / 12.0).sqrt();
    for _ in 0..8 {
        let (w, h) = ((4.0 * scale) as u32, (3.0 * scale) as u32);
        let img = encode(w.max(16), h.max(12), 7)?;
        if img.len() <= budget {
            return Ok(img);
        }
        scale *= 0.95 * (budget as f64 / img.len() as f64).sqrt();
    }
    anyhow::bail!("cannot fit a JPEG into {size} bytes")
}

/// Photo number `index` (its padding `index` bytes longer than photo 0's): `base` with comment
/// segments after SOI bringing it to about `size` bytes.
pub fn photo(base: &[u8], size: usize, index: usize) -> anyhow::Result<BenchPhoto> {
    ensure!(base.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let tag = format!("gridline bench photo {index}");
    let pad = (size.saturating_sub(base.len()) + index).max(tag.len() + 4 + 64);
    let mut out = Vec::with_capacity(base.len() + pad);
    out.extend_from_slice(&base[..2]);
    let mut left = pad;
    let mut first = true;
    while left > 0 {
        // A segment is 4 bytes of marker and length, then at most 65,533 bytes of text.
        let mut seg = left.min(4 + 65_533);
        if left - seg > 0 && left - seg < 8 {
            seg -= 8;
        }
        let body = seg - 4;
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((body + 2) as u16).to_be_bytes());
        let start = out.len();
        if first {
            out.extend_from_slice(tag.as_bytes());
            first = false;
        }
        out.resize(start + body, b'.');
        left -= seg;
    }
    out.extend_from_slice(&base[2..]);
    let sha256 = hex::encode(Sha256::digest(&out));
    Ok(BenchPhoto {
        bytes: Bytes::from(out),
        sha256,
    })
}

/// `count` distinct photos of about `size` bytes, numbered from `first`.
pub fn photos(
    base: &[u8],
    size: usize,
    first: usize,
    count: usize,
) -> anyhow::Result<Vec<BenchPhoto>> {
    (first..first + count)
        .map(|i| photo(base, size, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_photos_are_valid_distinct_and_sized() {
        let base = base_image(200 * 1024).unwrap();
        assert!(base.len() <= 200 * 1024 - PAD_ROOM);
        let a = photo(&base, 200 * 1024, 0).unwrap();
        let b = photo(&base, 200 * 1024, 70_000).unwrap();
        assert_ne!(a.sha256, b.sha256);
        assert_eq!(a.bytes.len(), 200 * 1024);
        assert_eq!(b.bytes.len(), 200 * 1024 + 70_000);
        let config = gridline_server::config::PhotosConfig::default();
        for p in [&a, &b] {
            let seen = gridline_server::photos::inspect::inspect(&p.bytes, &config)
                .expect("the server accepts it");
            let (w, h) = (seen.width.unwrap() as i64, seen.height.unwrap() as i64);
            assert!((w * 3 - h * 4).abs() <= 4, "{w}x{h} is 4:3");
        }
    }
}

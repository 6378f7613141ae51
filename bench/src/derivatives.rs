//! Scenario `derivatives`: the thumbnail and the preview of a 12-megapixel JPEG, made by the
//! function the derivative worker calls (`photos::derive::make`), next to `vipsthumbnail`
//! (libvips, from the OS packages) making the same two sizes from the same file, one run per
//! size, as a deployment without Gridline's worker would. No database is involved.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gridline_server::config::PhotosConfig;
use image::{ExtendedColorType, RgbImage};

use super::{Options, Report, Row};

/// A 4000×3000 photo-like JPEG at quality 90: smooth gradients (sky, walls), hard-edged
/// blocks (kerbs, signs) and sensor noise, which is what makes real photos expensive to
/// entropy-decode. Deterministic.
pub fn photo(width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let img = RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 25) as i32 - 12;
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let block = ((x / 97) ^ (y / 61)) % 5;
        let base = if fy < 0.35 {
            [90 + (fx * 60.0) as i32, 140 + (fy * 120.0) as i32, 220]
        } else {
            [
                60 + (block as i32) * 30 + (fx * 40.0) as i32,
                70 + (block as i32) * 25 + (fy * 50.0) as i32,
                60 + ((x / 13 + y / 7) % 9) as i32 * 12,
            ]
        };
        image::Rgb(base.map(|b| (b + noise).clamp(0, 255) as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode(
        img.as_raw(),
        width,
        height,
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// One photo through `vipsthumbnail`: preview and thumbnail, quality 85, metadata stripped.
fn vips_once(original: &Path, dir: &Path, config: &PhotosConfig) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for (name, px) in [("preview", config.preview_px), ("thumb", config.thumb_px)] {
        let out = dir.join(format!("{name}.jpg"));
        let status = Command::new("vipsthumbnail")
            .arg(original)
            // `>`: only ever shrink, as Gridline does.
            .args(["-s", &format!("{px}>"), "-o"])
            .arg(format!("{}[Q=85,strip]", out.display()))
            .status()
            .context("run vipsthumbnail")?;
        if !status.success() {
            bail!("vipsthumbnail failed: {status}");
        }
    }
    Ok(start.elapsed())
}

fn vips_version() -> Option<String> {
    let out = Command::new("vips").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let (w, h) = opts.photo_size;
    eprintln!(
        "derivatives: a {w}×{h} JPEG, {} iterations",
        opts.photo_iterations
    );
    let original = photo(w, h)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("original.jpg");
    std::fs::write(&path, &original)?;
    let config = PhotosConfig::default();
    let iterations = opts.photo_iterations.max(1);

    let (ours, sizes) = {
        let (original, config) = (original.clone(), config.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut times = Vec::new();
            let mut sizes = (0, 0);
            for _ in 0..iterations {
                let start = Instant::now();
                let made = gridline_server::photos::derive::make(&original, &config)?
                    .map_err(|r| anyhow::anyhow!("{}: {}", r.code.as_str(), r.message))?;
                times.push(start.elapsed());
                sizes = (
                    image::load_from_memory(&made.preview)?.width(),
                    image::load_from_memory(&made.thumb)?.width(),
                );
            }
            Ok((times, sizes))
        })
        .await??
    };

    let vips = match vips_version() {
        None => {
            report.note("derivatives: libvips reference not measured (vipsthumbnail is not installed; bench/run.sh installs libvips-tools)");
            None
        }
        Some(version) => {
            let (path, out, cfg) = (path.clone(), dir.path().to_owned(), config.clone());
            let times = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                (0..iterations)
                    .map(|_| vips_once(&path, &out, &cfg))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .await??;
            let (pw, _) = image::image_dimensions(dir.path().join("preview.jpg"))?;
            let (tw, _) = image::image_dimensions(dir.path().join("thumb.jpg"))?;
            if (pw, tw) != sizes {
                bail!("libvips made widths {pw} and {tw}, Gridline {sizes:?}");
            }
            report.note(format!(
                "derivatives: reference {version}, `vipsthumbnail original.jpg -s {}> -o preview.jpg[Q=85,strip]` then `-s {}>` for the thumbnail (process start included)",
                config.preview_px, config.thumb_px
            ));
            Some(median_ms(times))
        }
    };
    let ms = median_ms(ours);
    let ratio = vips.map(|v| ms / v);
    report.push(
        Row::new("derivatives", "—", "ms per photo (preview + thumbnail)", ms)
            .reference("vipsthumbnail, one run per size", vips)
            .lower_is_better()
            .target("≤ 0.5× libvips", ratio.map(|r| r <= 0.5)),
    );
    report.note(format!(
        "derivatives: a {w}×{h} JPEG of {:.1} MB at quality 90 → preview {}px and thumbnail {}px wide; medians of {iterations} runs",
        original.len() as f64 / 1e6,
        sizes.0,
        sizes.1
    ));
    Ok(())
}

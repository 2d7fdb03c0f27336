//! QR codes of share links as PNG images (sent as photos in Telegram, shown on the subscription page) and as
//! inline SVG (the admin dashboard).

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Luma};
use qrcode::QrCode;

/// Largest side of the image in pixels; every QR version then comes out between ~320 and 480 px.
const MAX_SIDE_PX: u32 = 480;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in a QR code (about 2.3 KB at the error-correction level used).
    #[error("text too long for a QR code")]
    TooLong,
    /// The QR or PNG encoder failed.
    #[error("QR code could not be made: {0}")]
    Encode(String),
}

/// A black-on-white PNG of `text` as a QR code (error correction M), with the standard 4-module quiet zone
/// and square modules sized so the image is at most 480 px wide. The same text gives the same bytes.
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| match e {
        qrcode::types::QrError::DataTooLong => QrError::TooLong,
        other => QrError::Encode(other.to_string()),
    })?;
    let image = code.render::<Luma<u8>>().quiet_zone(true).max_dimensions(MAX_SIDE_PX, MAX_SIDE_PX).build();
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::L8)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    Ok(png)
}

/// An `<svg>` element (no XML declaration, ready to inline in HTML) of `text` as a QR code, error correction M,
/// with the 4-module quiet zone, one unit per module (the page sizes it), dark runs of a row drawn as one
/// rectangle so a long link stays a few kilobytes. The same text gives the same markup.
pub fn qr_svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| match e {
        qrcode::types::QrError::DataTooLong => QrError::TooLong,
        other => QrError::Encode(other.to_string()),
    })?;
    let width = code.width();
    let colors = code.to_colors();
    let side = width + 8;
    // each row: a move to its middle line, then per dark run a relative gap and a 1-unit-thick line
    let mut path = String::new();
    for (y, row) in colors.chunks(width).enumerate() {
        let (mut x, mut pen) = (0, None::<usize>);
        while x < width {
            if row[x] != qrcode::Color::Dark {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && row[x] == qrcode::Color::Dark {
                x += 1;
            }
            match pen {
                None => path.push_str(&format!("M{} {}.5h{}", start + 4, y + 4, x - start)),
                Some(at) => path.push_str(&format!("m{} 0h{}", start - at, x - start)),
            }
            pen = Some(x);
        }
    }
    Ok(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" width="{px}" height="{px}" shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/><path stroke="#000" stroke-width="1" d="{path}"/></svg>"##,
        px = side * 4,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "vless://6f1c1f0e-9f5c-4c43-9d0a-1d7f2b2c9a11@node1.example.com:443?\
                        encryption=none&security=none&type=tcp#Germany%20%F0%9F%87%A9%F0%9F%87%AA";

    #[test]
    fn a_qr_code_is_a_png_of_sane_size() {
        let png = qr_png(LINK).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoded = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!(decoded.width(), decoded.height());
        assert!((300..=500).contains(&decoded.width()), "width {}", decoded.width());
    }

    #[test]
    fn the_quiet_zone_is_white() {
        let png = qr_png(LINK).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        let (w, h) = img.dimensions();
        let border = (0..w).flat_map(|x| [(x, 0), (x, h - 1)]);
        assert!(border.into_iter().all(|(x, y)| img.get_pixel(x, y).0 == [255]));
        // ...and the code itself has dark modules.
        assert!(img.pixels().any(|p| p.0 == [0]));
    }

    #[test]
    fn small_and_large_texts_stay_between_300_and_500_px() {
        for text in ["x".to_owned(), "y".repeat(1500)] {
            let png = qr_png(&text).unwrap();
            let img = image::load_from_memory(&png).unwrap();
            assert!((300..=500).contains(&img.width()), "width {}", img.width());
        }
    }

    #[test]
    fn the_same_text_gives_the_same_bytes() {
        assert_eq!(qr_png(LINK).unwrap(), qr_png(LINK).unwrap());
        assert_ne!(qr_png(LINK).unwrap(), qr_png("other").unwrap());
    }

    #[test]
    fn an_svg_qr_code_is_one_inline_svg_element_without_script_or_style_attributes() {
        let svg = qr_svg(LINK).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("<?xml") && !svg.contains("<script") && !svg.contains(" style="), "{svg}");
        assert_eq!(svg, qr_svg(LINK).unwrap());
        assert_eq!(qr_svg(&"z".repeat(5000)), Err(QrError::TooLong));
    }

    /// The dark modules the SVG path draws, read back (`M x y.5 h n` / `m dx 0 h n`, one unit thick).
    fn drawn(svg: &str, side: usize) -> Vec<bool> {
        let d = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        let mut grid = vec![false; side * side];
        let (mut x, mut y) = (0usize, 0usize);
        let re = regex::Regex::new(r"([Mmh])(\d+)(?: (\d+)(\.5)?)?").unwrap();
        for c in re.captures_iter(d) {
            let n: usize = c[2].parse().unwrap();
            match &c[1] {
                "M" => (x, y) = (n, c[3].parse().unwrap()),
                "m" => x += n,
                _ => {
                    (x..x + n).for_each(|i| grid[y * side + i] = true);
                    x += n;
                }
            }
        }
        grid
    }

    #[test]
    fn the_svg_draws_exactly_the_dark_modules_inside_a_quiet_zone() {
        for text in [LINK, "https://shop.example/sub/abc", &"y".repeat(1500)] {
            let svg = qr_svg(text).unwrap();
            let code = QrCode::new(text.as_bytes()).unwrap();
            let (width, side) = (code.width(), code.width() + 8);
            assert!(svg.contains(&format!(r#"viewBox="0 0 {side} {side}""#)), "{svg}");
            let grid = drawn(&svg, side);
            for (i, color) in code.to_colors().iter().enumerate() {
                let (x, y) = (i % width + 4, i / width + 4);
                assert_eq!(grid[y * side + x], *color == qrcode::Color::Dark, "module {x},{y}");
            }
            assert_eq!(
                grid.iter().filter(|d| **d).count(),
                code.to_colors().iter().filter(|c| **c == qrcode::Color::Dark).count()
            );
        }
    }

    #[test]
    fn too_long_text_is_an_error() {
        assert_eq!(qr_png(&"z".repeat(5000)), Err(QrError::TooLong));
    }
}

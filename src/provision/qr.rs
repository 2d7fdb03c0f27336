//! QR codes of share links as PNG images (sent as photos in Telegram, shown on the subscription page).

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
    fn too_long_text_is_an_error() {
        assert_eq!(qr_png(&"z".repeat(5000)), Err(QrError::TooLong));
    }
}

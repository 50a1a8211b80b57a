//! Which JPEG decoder turns a file into pixels: libjpeg-turbo (the system libjpeg through
//! src/data/libjpeg.c, PIL's decoder: torchvision's pixels bit for bit) or zune-jpeg (the
//! `image` crate's pure-Rust decoder, agml's before; its chroma upsampling differs from
//! libjpeg's by up to 4 levels, which moves normalised inputs by up to 0.05). Part of a photo
//! dataset's transform, so of the cell hash.

use std::ffi::{c_char, c_int, c_uint, c_ulong};

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// The decoder of a photo dataset's JPEGs (`decoder` in its table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JpegDecoder {
    /// libjpeg-turbo, as PIL (and so torchvision and the authors' code) decodes.
    #[default]
    LibjpegTurbo,
    /// zune-jpeg, through the `image` crate.
    ZuneJpeg,
}

unsafe extern "C" {
    fn agml_jpeg_decode(
        data: *const u8,
        size: c_ulong,
        out: *mut *mut u8,
        width: *mut c_uint,
        height: *mut c_uint,
        message: *mut c_char,
        message_size: usize,
    ) -> c_int;
    fn agml_jpeg_free(pixels: *mut u8);
}

/// True for the bytes of a JPEG file (its SOI marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// The JPEG `bytes` as 8-bit RGB, decoded by libjpeg with its defaults (islow IDCT, fancy
/// upsampling) as PIL does; libjpeg's message when it cannot (corrupt data, CMYK).
pub fn decode_libjpeg(bytes: &[u8]) -> Result<RgbImage, String> {
    let (mut out, mut width, mut height) = (std::ptr::null_mut(), 0, 0);
    let mut message = [0 as c_char; 256];
    // SAFETY: the shim reads `bytes` only, writes the out-parameters and at most
    // `message.len()` bytes of `message`, and on success hands over a buffer of
    // width * height * 3 bytes that is copied and freed here.
    let status = unsafe {
        agml_jpeg_decode(
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            &mut out,
            &mut width,
            &mut height,
            message.as_mut_ptr(),
            message.len(),
        )
    };
    if status != 0 {
        // SAFETY: the shim wrote a NUL-terminated message (snprintf).
        let text = unsafe { std::ffi::CStr::from_ptr(message.as_ptr()) };
        return Err(text.to_string_lossy().into_owned());
    }
    let len = width as usize * height as usize * 3;
    // SAFETY: on success `out` points to `len` initialised bytes owned by the shim.
    let pixels = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    // SAFETY: `out` came from the shim's malloc and is not used after this.
    unsafe { agml_jpeg_free(out) };
    Ok(RgbImage::from_raw(width, height, pixels).expect("width * height * 3 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libjpeg_decodes_what_the_image_crate_encodes_and_reports_garbage() {
        let mut source = RgbImage::new(40, 24);
        for (x, y, p) in source.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 6) as u8, (y * 10) as u8, 128]);
        }
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .encode_image(&source)
            .unwrap();
        assert!(is_jpeg(&bytes));
        let decoded = decode_libjpeg(&bytes).unwrap();
        assert_eq!(decoded.dimensions(), (40, 24));
        let worst = (decoded.as_raw().iter().zip(source.as_raw()))
            .map(|(&a, &b)| (i16::from(a) - i16::from(b)).abs())
            .max()
            .unwrap();
        assert!(worst <= 12, "quality 95 round trip off by {worst}");
        // Garbage after the marker is an error with libjpeg's message, not a crash.
        let error = decode_libjpeg(&[0xFF, 0xD8, 0xFF, 0x00, 0x01, 0x02]).unwrap_err();
        assert!(!error.is_empty());
    }
}

//! The image pipeline of the photo datasets: decode (JPEG/PNG), the training transform
//! (RandomResizedCrop + horizontal flip) or the test transform (Resize + CenterCrop), and the
//! backbone's input normalisation, as torchvision's transforms do it.
//!
//! Augmentation draws from a generator seeded by (run seed, epoch, position in the epoch), so
//! an epoch's images are the same in every run and after a resume.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ImageReader, RgbImage};

use super::jpeg::{JpegDecoder, decode_libjpeg, is_jpeg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{BadInput, Invalid};
use crate::model::BackboneKind;

/// How pixels are scaled and ordered for the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    /// RGB in [0, 1], then ImageNet mean / std (torchvision models).
    Imagenet,
    /// BGR, then mean [0.502, 0.4588, 0.4078] and std 0.0039 on [0, 1] values, i.e. inputs in
    /// about 0..255 (the Caffe-trained BN-Inception).
    BnInception,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
const BN_INCEPTION_MEAN: [f32; 3] = [0.502, 0.4588, 0.4078];
const BN_INCEPTION_STD: f32 = 0.0039;

impl Normalization {
    /// The convention of `backbone`'s pretrained weights.
    pub fn of(backbone: BackboneKind) -> Self {
        match backbone {
            BackboneKind::Bninception => Normalization::BnInception,
            _ => Normalization::Imagenet,
        }
    }
}

/// The transforms of one run (part of the cell's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Transform {
    /// Side of the square training crop (224; 227 for GoogLeNet in the authors' code).
    pub crop: usize,
    /// Side of the test crop.
    pub test_crop: usize,
    /// Shorter side after the test Resize (256).
    pub resize: usize,
    /// RandomResizedCrop's range of the crop's area, as a fraction of the image.
    pub scale: [f64; 2],
    /// RandomResizedCrop's range of the crop's aspect ratio (width / height).
    pub ratio: [f64; 2],
    /// Horizontal flip with probability 0.5.
    pub flip: bool,
    pub normalization: Normalization,
    /// The JPEG decoder (always written: cells before it was an option decoded with
    /// zune-jpeg, and have other hashes).
    pub decoder: JpegDecoder,
}

impl Default for Transform {
    fn default() -> Self {
        Self {
            crop: 224,
            test_crop: 224,
            resize: 256,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip: true,
            normalization: Normalization::Imagenet,
            decoder: JpegDecoder::default(),
        }
    }
}

impl Transform {
    /// Sides of at least 16 pixels and RandomResizedCrop ranges `[low, high]` with
    /// `0 < low <= high`, the scale at most 1.
    pub fn check(&self) -> Result<(), Invalid> {
        let sides: [(&'static [&'static str], usize); 3] = [
            (&["crop"], self.crop),
            (&["test_crop"], self.test_crop),
            (&["resize"], self.resize),
        ];
        for (key, side) in sides {
            if side < 16 {
                return Err(Invalid::new(key, format!("{} must be at least 16", key[0])));
            }
        }
        let ranges: [(&'static [&'static str], [f64; 2]); 2] =
            [(&["scale"], self.scale), (&["ratio"], self.ratio)];
        for (key, [lo, hi]) in ranges {
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                return Err(Invalid::new(
                    key,
                    format!("{} must be [low, high] with 0 < low <= high", key[0]),
                ));
            }
        }
        if self.scale[1] > 1.0 {
            return Err(Invalid::new(
                &["scale"],
                "scale is a fraction of the image: at most 1",
            ));
        }
        Ok(())
    }
}

/// Train (augmented, seeded) or test (deterministic) view of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The `position`-th image drawn in `epoch` (0-based) of the run with `seed`.
    Train {
        seed: u64,
        epoch: usize,
        position: usize,
    },
    Test,
}

impl View {
    /// The view of the `k`-th image of a batch that starts at this view's position.
    pub fn nth(self, k: usize) -> View {
        match self {
            View::Train {
                seed,
                epoch,
                position,
            } => View::Train {
                seed,
                epoch,
                position: position + k,
            },
            View::Test => View::Test,
        }
    }

    fn rng(self) -> ChaCha8Rng {
        match self {
            View::Train {
                seed,
                epoch,
                position,
            } => ChaCha8Rng::seed_from_u64(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ ((epoch as u64) << 40)
                    ^ (position as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            ),
            View::Test => ChaCha8Rng::seed_from_u64(0),
        }
    }
}

/// An image file and the part of it a dataset keeps (a table's crop box, kept before the
/// transforms).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFile {
    pub path: PathBuf,
    pub crop: Option<Crop>,
}

impl ImageFile {
    /// The image at `path`, kept whole.
    pub fn whole(path: PathBuf) -> ImageFile {
        ImageFile { path, crop: None }
    }
}

/// A box of an image in pixels, from its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Crop {
    /// The box within a `width` x `height` image: a box reaching past the image keeps what
    /// lies inside it (as numpy's slicing in OpenMetricLearning does); one wholly outside it
    /// is an error.
    pub fn within(&self, width: u32, height: u32) -> Result<Crop, String> {
        let (x2, y2) = (
            self.x.saturating_add(self.width).min(width),
            self.y.saturating_add(self.height).min(height),
        );
        if self.x >= x2 || self.y >= y2 {
            return Err(format!(
                "crop box x {}..{}, y {}..{} lies outside the {width}x{height} image",
                self.x,
                self.x.saturating_add(self.width),
                self.y,
                self.y.saturating_add(self.height)
            ));
        }
        Ok(Crop {
            width: x2 - self.x,
            height: y2 - self.y,
            ..*self
        })
    }

    /// The part of `image` inside the box.
    pub fn apply(&self, image: &RgbImage) -> Result<RgbImage, String> {
        let (w, h) = image.dimensions();
        let c = self.within(w, h)?;
        Ok(imageops::crop_imm(image, c.x, c.y, c.width, c.height).to_image())
    }
}

/// Decodes an image file to 8-bit RGB (greyscale and palette images are expanded): JPEGs with
/// `decoder`, other formats (PNG) with the `image` crate. A JPEG libjpeg refuses (CMYK) goes
/// to the `image` crate too; only when that fails as well is it bad input, with both reasons.
pub fn decode(path: &Path, decoder: JpegDecoder) -> Result<RgbImage, BadInput> {
    let bytes = std::fs::read(path)
        .map_err(|e| BadInput::new(format!("{}: cannot open the image: {e}", path.display())))?;
    let libjpeg = match decoder {
        JpegDecoder::LibjpegTurbo if is_jpeg(&bytes) => match decode_libjpeg(&bytes) {
            Ok(image) => return Ok(image),
            Err(message) => Some(message),
        },
        _ => None,
    };
    let image = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| BadInput::new(format!("{}: cannot read the image: {e}", path.display())))?
        .decode()
        .map_err(|e| {
            let libjpeg = libjpeg
                .as_ref()
                .map_or_else(String::new, |m| format!("; libjpeg: {m}"));
            BadInput::new(format!(
                "{}: not a decodable JPEG/PNG image: {e}{libjpeg}",
                path.display()
            ))
        })?;
    Ok(image.into_rgb8())
}

impl Transform {
    /// Side of the images of `view`.
    pub fn side(&self, view: View) -> usize {
        match view {
            View::Train { .. } => self.crop,
            View::Test => self.test_crop,
        }
    }

    /// The image of `file` as normalised `[3, side, side]` f32 values.
    pub fn load(&self, file: &ImageFile, view: View) -> Result<Vec<f32>, BadInput> {
        let mut image = decode(&file.path, self.decoder)?;
        if let Some(crop) = file.crop {
            image = crop
                .apply(&image)
                .map_err(|m| BadInput::new(format!("{}: {m}", file.path.display())))?;
        }
        Ok(self.normalize(&self.apply(&image, view)))
    }

    /// The geometric transform of `view`.
    pub fn apply(&self, image: &RgbImage, view: View) -> RgbImage {
        match view {
            View::Train { .. } => {
                let mut rng = view.rng();
                let (x, y, w, h) = random_resized_crop_box(
                    image.width(),
                    image.height(),
                    self.scale,
                    self.ratio,
                    &mut rng,
                );
                let flip = self.flip && rng.random_bool(0.5);
                self.resized_crop(image, (x, y, w, h), flip)
            }
            View::Test => {
                let (w, h) = resized_shorter_side(image.width(), image.height(), self.resize);
                let resized = imageops::resize(image, w, h, FilterType::Triangle);
                let side = (self.test_crop as u32).min(w).min(h);
                // torchvision's CenterCrop rounds the offsets with Python's round: half to
                // even (500x375 -> 341x256 crops at x = 58, not 59).
                let x = ((w - side) as f64 / 2.0).round_ties_even() as u32;
                let y = ((h - side) as f64 / 2.0).round_ties_even() as u32;
                let mut out = imageops::crop_imm(&resized, x, y, side, side).to_image();
                if side as usize != self.test_crop {
                    // An image smaller than the crop after resizing (resize < test_crop).
                    let s = self.test_crop as u32;
                    out = imageops::resize(&out, s, s, FilterType::Triangle);
                }
                out
            }
        }
    }

    /// The training view of a given crop box `(x, y, width, height)` and flip:
    /// torchvision's resized_crop (bilinear, antialiased) to the crop side, then the flip.
    pub fn resized_crop(
        &self,
        image: &RgbImage,
        (x, y, w, h): (u32, u32, u32, u32),
        flip: bool,
    ) -> RgbImage {
        let crop = imageops::crop_imm(image, x, y, w, h).to_image();
        let side = self.crop as u32;
        let mut out = imageops::resize(&crop, side, side, FilterType::Triangle);
        if flip {
            imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }

    /// `[3, h, w]` channel-major values in the backbone's convention.
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let plane = w * h;
        let mut out = vec![0f32; 3 * plane];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                let v = f32::from(pixel.0[c]) / 255.0;
                match self.normalization {
                    Normalization::Imagenet => {
                        out[c * plane + i] = (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                    }
                    Normalization::BnInception => {
                        // Channel c of the input goes to plane 2 - c (RGB -> BGR).
                        let o = 2 - c;
                        out[o * plane + i] = (v - BN_INCEPTION_MEAN[o]) / BN_INCEPTION_STD;
                    }
                }
            }
        }
        out
    }
}

/// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer keeps
/// the aspect ratio (truncated).
fn resized_shorter_side(w: u32, h: u32, size: usize) -> (u32, u32) {
    let size = size as u64;
    let (w64, h64) = (u64::from(w), u64::from(h));
    if w <= h {
        (size as u32, (size * h64 / w64).max(1) as u32)
    } else {
        ((size * w64 / h64).max(1) as u32, size as u32)
    }
}

/// torchvision's RandomResizedCrop.get_params: (x, y, width, height) of the crop.
fn random_resized_crop_box(
    width: u32,
    height: u32,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut impl Rng,
) -> (u32, u32, u32, u32) {
    let (w_img, h_img) = (f64::from(width), f64::from(height));
    let area = w_img * h_img;
    let log_ratio = [ratio[0].ln(), ratio[1].ln()];
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let aspect = rng.random_range(log_ratio[0]..=log_ratio[1]).exp();
        // Python's round (half to even), as torchvision's int(round(..)).
        let w = (target * aspect).sqrt().round_ties_even();
        let h = (target / aspect).sqrt().round_ties_even();
        if w > 0.0 && h > 0.0 && w <= w_img && h <= h_img {
            let (w, h) = (w as u32, h as u32);
            let y = rng.random_range(0..=height - h);
            let x = rng.random_range(0..=width - w);
            return (x, y, w, h);
        }
    }
    // Fallback: the whole image, cropped centrally to the ratio range.
    let in_ratio = w_img / h_img;
    let (w, h) = if in_ratio < ratio[0] {
        (width, ((w_img / ratio[0]).round_ties_even() as u32).max(1))
    } else if in_ratio > ratio[1] {
        (((h_img * ratio[1]).round_ties_even() as u32).max(1), height)
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        })
    }

    #[test]
    fn crop_boxes_lie_inside_the_image_and_respect_scale_and_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..500 {
            let (x, y, w, h) =
                random_resized_crop_box(500, 375, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut rng);
            assert!(x + w <= 500 && y + h <= 375 && w > 0 && h > 0);
            let area = f64::from(w * h) / (500.0 * 375.0);
            assert!((0.07..=1.01).contains(&area), "area fraction {area}");
            let r = f64::from(w) / f64::from(h);
            assert!((0.73..=1.37).contains(&r), "ratio {r}");
        }
        // An extreme strip falls back to a centred crop of the allowed ratio.
        let (x, y, w, h) = random_resized_crop_box(1000, 10, [0.9, 1.0], [0.75, 1.333], &mut rng);
        assert_eq!((w, h), (13, 10));
        assert_eq!((x, y), (493, 0));
    }

    #[test]
    fn train_view_is_seeded_by_seed_epoch_and_position() {
        let transform = Transform {
            crop: 32,
            ..Transform::default()
        };
        let image = gradient(120, 90);
        let view = |seed, epoch, position| View::Train {
            seed,
            epoch,
            position,
        };
        let a = transform.apply(&image, view(1, 0, 5));
        assert_eq!(a.dimensions(), (32, 32));
        assert_eq!(a, transform.apply(&image, view(1, 0, 5)));
        assert_ne!(a, transform.apply(&image, view(1, 0, 6)));
        assert_ne!(a, transform.apply(&image, view(1, 1, 5)));
        assert_ne!(a, transform.apply(&image, view(2, 0, 5)));
    }

    #[test]
    fn test_view_resizes_the_shorter_side_and_crops_the_centre() {
        let transform = Transform {
            resize: 64,
            test_crop: 56,
            ..Transform::default()
        };
        assert_eq!(resized_shorter_side(500, 375, 256), (341, 256));
        assert_eq!(resized_shorter_side(375, 500, 256), (256, 341));
        let out = transform.apply(&gradient(200, 100), View::Test);
        assert_eq!(out.dimensions(), (56, 56));
        // The centre column of the output is the centre column of the input (red ~ x).
        let centre = out.get_pixel(28, 28).0[0];
        assert!((120..=136).contains(&centre), "red at the centre {centre}");
    }

    #[test]
    fn normalisation_follows_each_backbone_convention() {
        let image = RgbImage::from_pixel(2, 1, Rgb([255, 0, 128]));
        let imagenet = Transform::default().normalize(&image);
        assert_eq!(imagenet.len(), 6);
        assert!((imagenet[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((imagenet[2] - (0.0 - 0.456) / 0.224).abs() < 1e-5);
        let bgr = Transform {
            normalization: Normalization::BnInception,
            ..Transform::default()
        }
        .normalize(&image);
        // Plane 0 is blue (128 / 255), plane 2 is red (1.0).
        assert!((bgr[0] - (128.0 / 255.0 - 0.502) / 0.0039).abs() < 1e-3);
        assert!((bgr[4] - (1.0 - 0.4078) / 0.0039).abs() < 1e-3);
    }
}

//! Cars196 (Krause et al. 2013): 196 car models, 16,185 images, annotated in the MATLAB file
//! `cars_annos.mat` (read with the matrw crate). The first half of the classes (1-98) train,
//! the second half (99-196) test; the file's own train/test flag (a classification split) is
//! not used, as in every deep metric learning paper.

use std::path::Path;

use matrw::{MatVariable, load_matfile_from_u8};

use super::photos::{Entry, Listing, check_files, check_root};
use crate::error::BadInput;

/// What the loader expects under the root.
pub const LAYOUT: &str = "cars196/ with cars_annos.mat (struct array `annotations` with \
     fields relative_im_path and class, cell array `class_names`) and car_ims/";

/// Lists the images of a Cars196 folder.
pub fn list(root: &Path) -> Result<Listing, BadInput> {
    check_root(root, "Cars196", LAYOUT)?;
    let path = root.join("cars_annos.mat");
    let bad = |message: String| {
        BadInput::new(format!(
            "{}: {message} (expected layout: {LAYOUT})",
            path.display()
        ))
    };
    if !path.is_file() {
        return Err(bad("not found".into()));
    }
    let mut bytes = std::fs::read(&path).map_err(|e| bad(format!("cannot read: {e}")))?;
    normalise_header(&mut bytes).map_err(bad)?;
    let mat = load_matfile_from_u8(&bytes).map_err(|e| {
        let first = format!("{e:?}");
        let first = first
            .lines()
            .find(|l| l.contains("Error"))
            .unwrap_or("")
            .trim();
        bad(format!("not a readable MATLAB v5/v7 file ({first})"))
    })?;
    let annotations = &mat["annotations"];
    if !matches!(annotations, MatVariable::StructureArray(_)) {
        return Err(bad("has no struct array `annotations`".into()));
    }
    let class_count = match &mat["class_names"] {
        MatVariable::CellArray(_) => mat["class_names"].dim().iter().product::<usize>() as u32,
        _ => return Err(bad("has no cell array `class_names`".into())),
    };
    let count: usize = annotations.dim().iter().product();
    let mut listing = Listing::default();
    for i in 0..count {
        let record = &annotations[i];
        let file = text(&record["relative_im_path"])
            .ok_or_else(|| bad(format!("annotation {} has no relative_im_path text", i + 1)))?;
        let class = integer(&record["class"])
            .ok_or_else(|| bad(format!("annotation {} has no integer class", i + 1)))?;
        if class == 0 || class > class_count {
            return Err(bad(format!(
                "annotation {} has class {class}, not in 1..={class_count}",
                i + 1
            )));
        }
        let entry = Entry::new(root.join(file), class);
        if class <= class_count / 2 {
            listing.train.push(entry);
        } else {
            listing.test.push(entry);
        }
    }
    if listing.train.is_empty() || listing.test.is_empty() {
        return Err(bad("needs images of both halves of the classes".into()));
    }
    check_files(&listing, root, LAYOUT)?;
    Ok(listing)
}

/// Bytes 124..128 of a MAT file: the version (0x0100 for v5/v7) and the endian indicator.
const HEADER_TEXT: usize = 116;
const V5_TEXT: &[u8] = b"MATLAB 5.0 MAT-file, ";

/// Makes the free-text header of a v5/v7 file start as MATLAB writes it: matrw recognises the
/// version by that text, which the format leaves free (scipy writes "MATLAB 5.0 MAT-file
/// Platform: ..." without the comma). The version field decides.
fn normalise_header(bytes: &mut [u8]) -> Result<(), String> {
    if bytes.len() < 128 {
        return Err("too short for a MAT file header".into());
    }
    let version = match &bytes[126..128] {
        b"IM" => u16::from_le_bytes([bytes[124], bytes[125]]),
        b"MI" => u16::from_be_bytes([bytes[124], bytes[125]]),
        _ => return Err("not a MAT file (no endian indicator at byte 126)".into()),
    };
    match version {
        0x0100 => {
            bytes[..V5_TEXT.len()].copy_from_slice(V5_TEXT);
            debug_assert!(V5_TEXT.len() < HEADER_TEXT);
            Ok(())
        }
        0x0200 => Err("a MATLAB v7.3 (HDF5) file: save it with `save -v7` to read it".into()),
        other => Err(format!("unknown MAT file version {other:#06x}")),
    }
}

/// A char array as a string.
fn text(value: &MatVariable) -> Option<String> {
    value.to_vec_char().map(|chars| chars.into_iter().collect())
}

/// A scalar of any integer or float class as a u32 (MATLAB files store classes as uint8,
/// uint16 or double depending on who wrote them).
fn integer(value: &MatVariable) -> Option<u32> {
    let as_f64 = value
        .to_u8()
        .map(f64::from)
        .or_else(|| value.to_u16().map(f64::from))
        .or_else(|| value.to_u32().map(f64::from))
        .or_else(|| value.to_i32().map(f64::from))
        .or_else(|| value.to_i64().map(|v| v as f64))
        .or_else(|| value.to_f64())
        .or_else(|| value.to_f32().map(f64::from))?;
    (as_f64 >= 0.0 && as_f64.fract() == 0.0 && as_f64 <= f64::from(u32::MAX))
        .then_some(as_f64 as u32)
}

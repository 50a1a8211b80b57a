//! NumPy `.npy` files (format versions 1-3, little-endian, C order): what `agml evaluate`
//! reads and what runs store their embeddings as.

use std::path::Path;

use crate::error::BadInput;

const MAGIC: &[u8] = b"\x93NUMPY";

/// An array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub values: NpyValues,
}

/// The values, widened to one float and one integer type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyValues {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

/// Reads a `.npy` file; anything it cannot read is bad input naming the file.
pub fn read_npy(path: &Path) -> Result<NpyArray, BadInput> {
    let bytes = std::fs::read(path)
        .map_err(|e| BadInput::new(format!("{}: cannot read: {e}", path.display())))?;
    parse(&bytes).map_err(|why| {
        BadInput::new(format!(
            "{}: not a readable .npy array: {why}",
            path.display()
        ))
    })
}

/// The header's dtype and shape, and where the data starts.
fn parse_header(bytes: &[u8]) -> Result<(String, Vec<usize>, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("no NUMPY magic".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated header")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("no '{key}' in the header"))?;
        Ok(header[at + key.len() + 2..]
            .trim_start()
            .trim_start_matches(':')
            .trim_start())
    };
    let descr = field("descr")?
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or_default()
        .to_string();
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran order is not supported".into());
    }
    let shape_text = field("shape")?;
    let shape_text = &shape_text[1..shape_text.find(')').ok_or("bad shape")?];
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad shape entry {s}")))
        .collect::<Result<_, _>>()?;
    Ok((descr, shape, start + header_len))
}

/// Little-endian values of dtype `descr`: floats as f32, integers as i64.
fn decode(descr: &str, data: &[u8]) -> NpyValues {
    fn read<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().expect("N bytes")))
            .collect()
    }
    match descr {
        "<f4" => NpyValues::Float(read(data, f32::from_le_bytes)),
        "<f8" => NpyValues::Float(read(data, |b| f64::from_le_bytes(b) as f32)),
        "<i8" => NpyValues::Int(read(data, i64::from_le_bytes)),
        "<u8" => NpyValues::Int(read(data, |b| u64::from_le_bytes(b) as i64)),
        "<i4" => NpyValues::Int(read(data, |b| i64::from(i32::from_le_bytes(b)))),
        "<u4" => NpyValues::Int(read(data, |b| i64::from(u32::from_le_bytes(b)))),
        "|u1" => NpyValues::Int(data.iter().map(|&b| i64::from(b)).collect()),
        _ => NpyValues::Int(data.iter().map(|&b| i64::from(b as i8)).collect()),
    }
}

fn parse(bytes: &[u8]) -> Result<NpyArray, String> {
    let (descr, shape, start) = parse_header(bytes)?;
    let count: usize = shape.iter().product();
    let data = &bytes[start..];
    let width = match descr.as_str() {
        "<f4" | "<i4" | "<u4" => 4,
        "<f8" | "<i8" | "<u8" => 8,
        "|u1" | "|i1" => 1,
        other => return Err(format!("dtype {other} (expected <f4, <f8, <i8, <i4 or u1)")),
    };
    if data.len() != count * width {
        return Err(format!(
            "{} data bytes for shape {shape:?} of {descr}",
            data.len()
        ));
    }
    Ok(NpyArray {
        shape,
        values: decode(&descr, data),
    })
}

fn encode(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that the data starts on a multiple of 64 bytes, ending the header with '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// `.npy` bytes of a float32 array.
pub fn f32_npy(values: &[f32], shape: &[usize]) -> Vec<u8> {
    assert_eq!(values.len(), shape.iter().product::<usize>());
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode("<f4", shape, &data)
}

/// `.npy` bytes of an int64 array.
pub fn i64_npy(values: &[i64], shape: &[usize]) -> Vec<u8> {
    assert_eq!(values.len(), shape.iter().product::<usize>());
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode("<i8", shape, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_numpy_headers() {
        let bytes = f32_npy(&[1.0, 2.5, -3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(bytes.len() % 16, (6 * 4) % 16);
        assert_eq!(
            (bytes.len() - 24) % 64,
            0,
            "data starts on a 64-byte boundary"
        );
        let array = parse(&bytes).unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(
            array.values,
            NpyValues::Float(vec![1.0, 2.5, -3.0, 4.0, 5.0, 6.0])
        );
        let labels = parse(&i64_npy(&[3, -1, 7], &[3])).unwrap();
        assert_eq!(labels.shape, vec![3]);
        assert_eq!(labels.values, NpyValues::Int(vec![3, -1, 7]));
        // numpy's own header spelling: np.save of np.arange(3, dtype=np.int32).
        let mut numpy =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"
                .to_vec();
        numpy.resize(10 + 117, b' ');
        numpy.push(b'\n');
        for v in [0i32, 1, 2] {
            numpy.extend_from_slice(&v.to_le_bytes());
        }
        let parsed = parse(&numpy).unwrap();
        assert_eq!(parsed.values, NpyValues::Int(vec![0, 1, 2]));
    }

    #[test]
    fn bad_files_are_explained() {
        assert!(parse(b"not numpy").unwrap_err().contains("magic"));
        let mut truncated = f32_npy(&[1.0, 2.0], &[2]);
        truncated.pop();
        assert!(parse(&truncated).unwrap_err().contains("data bytes"));
        let error = read_npy(Path::new("/nonexistent/e.npy")).unwrap_err();
        assert!(error.message.contains("/nonexistent/e.npy"));
    }
}

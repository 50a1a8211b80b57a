//! A state dict written as `torch.save` writes it (PyTorch's zip format: `archive/data.pkl`, a
//! protocol-2 pickle of an OrderedDict of `torch._utils._rebuild_tensor_v2` calls, and one
//! storage entry per tensor), so that tests load regenerated weights through the same reader as
//! a user's `.pth` file.

use std::io::Write;
use std::path::Path;

use super::seeded::{Named, Values};

/// Pickle opcodes used (Python's pickletools names).
const PROTO: u8 = 0x80;
const GLOBAL: u8 = b'c';
const EMPTY_TUPLE: u8 = b')';
const REDUCE: u8 = b'R';
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const BINUNICODE: u8 = b'X';
const BININT: u8 = b'J';
const BINPERSID: u8 = b'Q';
const NEWFALSE: u8 = 0x89;
const SETITEMS: u8 = b'u';
const STOP: u8 = b'.';

struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, op: u8) -> &mut Self {
        self.0.push(op);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(GLOBAL);
        self.0.extend(format!("{module}\n{name}\n").bytes());
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        self.op(BINUNICODE);
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.bytes());
        self
    }
    fn int(&mut self, v: usize) -> &mut Self {
        self.op(BININT);
        self.0.extend(i32::try_from(v).unwrap().to_le_bytes());
        self
    }
    fn ints(&mut self, values: &[usize]) -> &mut Self {
        self.op(MARK);
        for &v in values {
            self.int(v);
        }
        self.op(TUPLE)
    }
    fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict")
            .op(EMPTY_TUPLE)
            .op(REDUCE)
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// Writes `tensors` to `path` as a PyTorch state dict.
pub fn save(path: &Path, tensors: &[Named]) {
    let mut p = Pickle(vec![PROTO, 2]);
    p.ordered_dict().op(MARK);
    for (key, t) in tensors.iter().enumerate() {
        let storage = match t.values {
            Values::F32(_) => "FloatStorage",
            Values::I64(_) => "LongStorage",
        };
        p.string(&t.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(MARK)
            .op(MARK)
            .string("storage")
            .global("torch", storage)
            .string(&key.to_string())
            .string("cpu")
            .int(t.shape.iter().product())
            .op(TUPLE)
            .op(BINPERSID)
            .int(0)
            .ints(&t.shape)
            .ints(&strides(&t.shape))
            .op(NEWFALSE)
            .ordered_dict()
            .op(TUPLE)
            .op(REDUCE);
    }
    p.op(SETITEMS).op(STOP);

    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut entry = |name: &str, bytes: &[u8]| {
        zip.start_file(format!("archive/{name}"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    };
    entry("data.pkl", &p.0);
    entry("byteorder", b"little");
    for (key, t) in tensors.iter().enumerate() {
        entry(&format!("data/{key}"), &t.values.le_bytes());
    }
    entry("version", b"3\n");
    entry(".format_version", b"1");
    zip.finish().unwrap();
}

//! `--set dotted.key=VALUE`: a matrix setting changed on the command line. Overrides are laid
//! on the parsed file before anything is validated, so an override is checked, expanded and
//! hashed exactly as the same line written in the file would be, and an error in it names the
//! argument instead of a line of the file.
//!
//! How: the overrides are appended to the file's text under a table of their own
//! (`[__agml_set__]`, one numbered dotted key each), the whole is parsed once, and each value
//! is moved to its key. Every span of the file stays where it was, and a span past the file's
//! end belongs to the override whose line holds it.

use std::ops::Range;
use std::str::FromStr;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The table the overrides are parsed under (a file that has it too fails to parse, as a
/// duplicate; alone, the schema refuses it).
const TABLE: &str = "__agml_set__";

/// One `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The argument as given, for errors (printed by `Display`).
    arg: String,
    /// The dotted key, as TOML writes it (`defaults.epochs`, `datasets."my data".root`).
    key: String,
    /// The value as TOML: the argument's when it is one, else the argument quoted as a string
    /// (`--set datasets.cub.root=/data/CUB_200_2011` needs no quotes).
    value: String,
    /// How many keys deep the dotted key goes.
    depth: usize,
}

impl FromStr for Override {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!(
                "`{arg}`: expected KEY=VALUE (e.g. defaults.epochs=2)"
            ));
        };
        let key = key.trim();
        let depth = Some(key)
            .filter(|key| !key.is_empty() && !key.contains(['\n', '\r']))
            .and_then(|key| {
                let line = format!("{key} = 0");
                DeTable::parse(&line)
                    .ok()
                    .and_then(|t| dotted_depth(t.get_ref()))
            })
            .ok_or_else(|| format!("`{key}` is not a TOML key (e.g. defaults.epochs)"))?;
        let value = value.trim();
        let value = match DeValue::parse(value) {
            Ok(_) => value.to_string(),
            Err(_) => toml::Value::String(value.to_string()).to_string(),
        };
        Ok(Override {
            arg: arg.to_string(),
            key: key.to_string(),
            value,
            depth,
        })
    }
}

/// The argument as given, line breaks written as `\n` (an error message is one line).
impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.arg.replace('\r', "\\r").replace('\n', "\\n"))
    }
}

/// Keys in the one chain of tables a lone `a.b.c = 0` parses into; None when the text parsed
/// into more than one key.
fn dotted_depth(table: &DeTable) -> Option<usize> {
    let mut entries = table.iter();
    let (_, value) = entries.next()?;
    if entries.next().is_some() {
        return None;
    }
    match value.get_ref() {
        DeValue::Table(inner) => dotted_depth(inner).map(|depth| depth + 1),
        _ => Some(1),
    }
}

/// A matrix's text with its overrides appended, and where each override's line lies in it.
pub(super) struct WithOverrides<'a> {
    pub text: String,
    /// The length of the file's own text: spans before it are the file's.
    pub file_len: usize,
    pub overrides: &'a [Override],
    lines: Vec<Range<usize>>,
}

impl<'a> WithOverrides<'a> {
    pub(super) fn new(file_text: &str, overrides: &'a [Override]) -> Self {
        let mut text = file_text.to_string();
        let mut lines = Vec::new();
        if !overrides.is_empty() {
            text += &format!("\n[{TABLE}]\n");
            for (i, o) in overrides.iter().enumerate() {
                let start = text.len();
                text += &format!("{i}.{} = {}", o.key, o.value);
                lines.push(start..text.len());
                text.push('\n');
            }
        }
        WithOverrides {
            text,
            file_len: file_text.len(),
            overrides,
            lines,
        }
    }

    /// The override whose line holds byte `offset`, for a span past the file's end.
    pub(super) fn override_at(&self, offset: usize) -> Option<&Override> {
        let i = self.lines.iter().position(|line| line.contains(&offset))?;
        Some(&self.overrides[i])
    }

    /// The parsed text, each override laid at its key: tables on its way are kept (and made
    /// when missing), whatever the key held is replaced. Err: an override whose way passes a
    /// value that is not a table, with the byte offset of that override.
    pub(super) fn apply<'i>(
        &self,
        mut root: Spanned<DeTable<'i>>,
    ) -> Result<Spanned<DeTable<'i>>, (usize, String)> {
        // Without overrides the text is the file's, which may have any key (the schema
        // refuses it later, with its line).
        if self.overrides.is_empty() {
            return Ok(root);
        }
        let set = (root.get_mut().remove(TABLE)).expect("the overrides' table is parsed");
        let DeValue::Table(mut set) = set.into_inner() else {
            unreachable!("[{TABLE}] is a table: a file's own key of that name is a duplicate")
        };
        for (i, o) in self.overrides.iter().enumerate() {
            let chain = set
                .remove(i.to_string().as_str())
                .expect("one entry per override");
            lay(root.get_mut(), chain, o.depth)
                .map_err(|message| (self.lines[i].start, message))?;
        }
        Ok(root)
    }
}

/// Lays the last value of a chain of `depth` single-key tables (`{a: {b: v}}`) on `table` at
/// the chain's keys.
fn lay<'i>(
    table: &mut DeTable<'i>,
    chain: Spanned<DeValue<'i>>,
    depth: usize,
) -> Result<(), String> {
    let span = chain.span();
    let DeValue::Table(link) = chain.into_inner() else {
        unreachable!("a dotted key parses into tables")
    };
    let (key, value) = (link.into_iter().next()).expect("each link of a dotted key has one key");
    if depth == 1 {
        table.insert(key, value);
        return Ok(());
    }
    let name = key.get_ref().to_string();
    let next = table
        .entry(key)
        .or_insert_with(|| Spanned::new(span, DeValue::Table(DeTable::new())));
    match next.get_mut() {
        DeValue::Table(inner) => lay(inner, value, depth - 1),
        other => Err(format!(
            "`{name}` is {} {}, not a table",
            article(other.type_str()),
            other.type_str()
        )),
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::is_bad_input;
    use crate::matrix::Matrix;

    const FILE: &str = r#"[axes]
dataset = ["synthetic"]
backbone = ["convnet-small"]
head = ["attentive"]
loss = ["margin"]
groups = [2]
seed = [0]

[defaults]
epochs = 3
batch_size = 8
samples_per_class = 2
"#;

    fn set(args: &[&str]) -> Vec<Override> {
        args.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn parse(text: &str, args: &[&str]) -> anyhow::Result<Matrix> {
        Matrix::parse_with(Path::new("m.toml"), text, &set(args))
    }

    fn error(text: &str, args: &[&str]) -> String {
        let error = parse(text, args).unwrap_err();
        assert!(is_bad_input(&error), "not bad input: {error:#}");
        format!("{error:#}")
    }

    fn hashes(m: &Matrix) -> Vec<&str> {
        m.cells.iter().map(|c| c.hash.as_str()).collect()
    }

    #[test]
    fn an_override_is_the_same_line_written_in_the_file() {
        let file = parse(FILE, &[]).unwrap();
        let set = parse(FILE, &["defaults.epochs=5", "axes.seed=[0, 1]"]).unwrap();
        let written = FILE
            .replace("epochs = 3", "epochs = 5")
            .replace("seed = [0]", "seed = [0, 1]");
        let written = parse(&written, &[]).unwrap();
        assert_eq!(hashes(&set), hashes(&written));
        assert_eq!(set.cells.len(), 2);
        assert_eq!(set.cells[0].config.train.epochs, 5);
        assert!(!hashes(&set).contains(&hashes(&file)[0]));
        // The last of two overrides of one key wins.
        let twice = parse(FILE, &["defaults.epochs=4", "defaults.epochs=5"]).unwrap();
        assert_eq!(twice.cells[0].config.train.epochs, 5);
    }

    #[test]
    fn missing_tables_are_made_and_a_bare_word_is_a_string() {
        let m = parse(
            FILE,
            &["datasets.synthetic.classes=16", "description=a quick look"],
        )
        .unwrap();
        let written = format!("{FILE}\n[datasets.synthetic]\nclasses = 16\n");
        assert_eq!(hashes(&m), hashes(&parse(&written, &[]).unwrap()));
        assert_ne!(hashes(&m), hashes(&parse(FILE, &[]).unwrap()));
        assert_eq!(m.description.as_deref(), Some("a quick look"));
    }

    #[test]
    fn an_error_in_an_override_names_the_argument() {
        let e = error(FILE, &["defaults.epochs=\"many\""]);
        assert!(
            e.starts_with("m.toml: --set defaults.epochs=\"many\": `epochs`"),
            "{e}"
        );
        let e = error(FILE, &["defaults.epoch=5"]);
        assert!(
            e.contains("--set defaults.epoch=5:") && e.contains("epoch"),
            "{e}"
        );
        let e = error(FILE, &["axes.seed.first=1"]);
        assert!(
            e.contains("--set axes.seed.first=1: `seed` is an array, not a table"),
            "{e}"
        );
        let e = error(FILE, &["axes.groups=[0]"]);
        assert!(
            e.contains("--set axes.groups=[0]: a group count must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn an_error_in_the_file_keeps_its_line_and_column() {
        let broken = FILE.replace("epochs = 3", "epochs = \"three\"");
        let e = error(&broken, &["axes.seed=[1]"]);
        assert!(e.starts_with("m.toml:10:10: `epochs`"), "{e}");
    }

    #[test]
    fn a_file_with_the_overrides_table_is_refused_not_a_panic() {
        let own = format!("__agml_set__ = 1\n{FILE}");
        assert!(error(&own, &[]).contains("unknown field `__agml_set__`"));
        assert!(error(&own, &["seed=1"]).starts_with("m.toml: --set"));
    }

    #[test]
    fn arguments_that_are_no_key_and_value_are_refused() {
        for bad in ["epochs", "=5", "a b=5", "a..b=1", "a\n[x]\nb=2"] {
            assert!(bad.parse::<Override>().is_err(), "{bad}");
        }
        let quoted: Override = "datasets.\"my data\".root=/x".parse().unwrap();
        assert_eq!((quoted.depth, quoted.value.as_str()), (3, "\"/x\""));
    }
}

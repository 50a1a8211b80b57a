//! Matrix tables as spanned layers: `[defaults]` <- `[datasets.<name>.train]` for training
//! settings, `[datasets.<name>]` for a dataset's parameters. A layer knows no field names: the
//! typed configuration it resolves into (with its serde defaults) is the one place a setting is
//! declared, so a new option is one field there; every key keeps its span for errors.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use toml::Spanned;

use super::source::Source;
use crate::error::BadInput;

/// A value of a table, with the spans of a nested table's keys kept.
#[derive(Debug, Clone)]
pub enum Node {
    Value(toml::Value),
    Table(Layer),
}

/// One table as written: key -> value with its span.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(transparent)]
pub struct Layer(BTreeMap<String, Spanned<Node>>);

impl Node {
    fn to_value(&self) -> toml::Value {
        match self {
            Node::Value(value) => value.clone(),
            Node::Table(layer) => layer.to_value(),
        }
    }
}

impl Layer {
    /// `over` laid on `self`: every key `over` sets wins.
    pub(super) fn overlaid(&self, over: &Layer) -> Layer {
        let mut merged = self.0.clone();
        merged.extend(over.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Layer(merged)
    }

    /// Where `key` was set, if the layer sets it.
    pub(super) fn span(&self, key: &str) -> Option<Range<usize>> {
        self.0.get(key).map(Spanned::span)
    }

    /// The keys of the layer that `keep` accepts.
    pub(super) fn filtered(&self, keep: impl Fn(&str) -> bool) -> Layer {
        Layer(
            self.0
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// An unknown key as bad input at its position, listing `known`.
    pub(super) fn check_keys(
        &self,
        known: &[&str],
        what: &str,
        src: &Source,
    ) -> Result<(), BadInput> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((key, value)) => Err(src.at(
                value.span().start,
                format!("unknown {what} `{key}` (known: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The nested table `key` (empty when absent).
    pub(super) fn table(&self, key: &str, src: &Source) -> Result<Layer, BadInput> {
        match self.0.get(key) {
            None => Ok(Layer::default()),
            Some(node) => match node.get_ref() {
                Node::Table(layer) => Ok(layer.clone()),
                Node::Value(_) => Err(src.error_at(node, format!("`{key}` must be a table"))),
            },
        }
    }

    /// The value of `key` as a `T`, with its span, when the layer sets it.
    pub(super) fn get<T: DeserializeOwned>(
        &self,
        key: &str,
        src: &Source,
    ) -> Result<Option<Spanned<T>>, BadInput> {
        let Some(node) = self.0.get(key) else {
            return Ok(None);
        };
        T::deserialize(node.get_ref().to_value())
            .map(|value| Some(Spanned::new(node.span(), value)))
            .map_err(|e| src.error_at(node, format!("`{key}`: {}", first_line(&e))))
    }

    fn to_value(&self) -> toml::Value {
        toml::Value::Table(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().to_value()))
                .collect(),
        )
    }

    /// The layer deserialised into `T`, whose serde defaults fill what the layer leaves out.
    /// A wrong type or an unknown key names the key's line and column.
    pub(super) fn resolve<T: DeserializeOwned>(&self, src: &Source) -> Result<T, BadInput> {
        self.resolve_tagged(None, src)
    }

    /// [`Self::resolve`] into an internally tagged enum: `tag` = (key, variant) is added.
    pub(super) fn resolve_tagged<T: DeserializeOwned>(
        &self,
        tag: Option<(&str, &str)>,
        src: &Source,
    ) -> Result<T, BadInput> {
        let value = |entries: &mut dyn Iterator<Item = (&String, &Spanned<Node>)>| {
            let mut table: toml::Table = entries
                .map(|(k, v)| (k.clone(), v.get_ref().to_value()))
                .collect();
            if let Some((key, variant)) = tag {
                table.insert(key.to_string(), toml::Value::String(variant.to_string()));
            }
            toml::Value::Table(table)
        };
        match T::deserialize(value(&mut self.0.iter())) {
            Ok(value) => Ok(value),
            Err(whole) => {
                // The first key that fails alone is the one to point at.
                for (key, node) in &self.0 {
                    if let Err(e) = T::deserialize(value(&mut std::iter::once((key, node)))) {
                        let message = format!("`{key}`: {}", first_line(&e));
                        return Err(src.error_at(node, message));
                    }
                }
                let message = first_line(&whole);
                Err(BadInput::new(format!("{}: {message}", src.path.display())))
            }
        }
    }
}

/// The first line of a deserialisation error (toml adds "in `key`" lines; the key is named
/// already, and bad input is one line).
fn first_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Reads a value straight from the TOML deserializer, so nested tables keep their spans.
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::Boolean(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| Node::Value(toml::Value::Integer(v)))
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Value(toml::Value::String(v.to_string())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<toml::Value>()? {
            items.push(item);
        }
        Ok(Node::Value(toml::Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Spanned<Node>>()? {
            entries.insert(key, value);
        }
        Ok(Node::Table(Layer(entries)))
    }
}

/// The field names of a struct that derives `Deserialize` (serde hands them to
/// `deserialize_struct`; this deserializer records them and stops).
pub(super) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut capture = FieldCapture(&[]);
    let _ = T::deserialize(&mut capture);
    capture.0
}

struct FieldCapture(&'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("field names captured")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut FieldCapture {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0 = fields;
        Err(Stop)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        epochs: usize,
        lr: f64,
    }

    #[derive(Deserialize)]
    struct File {
        a: Layer,
        b: Layer,
    }

    const TEXT: &str = "[a]\nepochs = 3\nlr = 0.5\n[a.train]\nlr = 1.0\n[b]\nlr = 0.25\n";

    fn src(text: &str) -> Source<'_> {
        Source::new(Path::new("m.toml"), text, &[])
    }

    #[test]
    fn later_layers_win_and_defaults_fill_the_rest() {
        let file: File = toml::from_str(TEXT).unwrap();
        let merged = file.a.filtered(|k| k != "train").overlaid(&file.b);
        let got: Example = merged.resolve(&src(TEXT)).unwrap();
        assert_eq!(
            got,
            Example {
                epochs: 3,
                lr: 0.25
            }
        );
        assert_eq!(merged.span("lr"), file.b.span("lr"));
        let empty: Example = Layer::default().resolve(&src(TEXT)).unwrap();
        assert_eq!(empty, Example::default());
    }

    #[test]
    fn nested_tables_keep_the_positions_of_their_keys() {
        let file: File = toml::from_str(TEXT).unwrap();
        let train = file.a.table("train", &src(TEXT)).unwrap();
        let span = train.span("lr").unwrap();
        assert_eq!(crate::error::line_column(TEXT, span.start), (5, 6));
        assert_eq!(train.resolve::<Example>(&src(TEXT)).unwrap().lr, 1.0);
    }

    #[test]
    fn a_bad_key_is_named_with_its_position() {
        for (text, line, what) in [
            ("[a]\nepochs = 3\nlr = \"fast\"\n[b]\n", 3, "`lr`"),
            ("[a]\nepoch = 3\n[b]\n", 2, "`epoch`"),
        ] {
            let file: File = toml::from_str(text).unwrap();
            let error = file
                .a
                .resolve::<Example>(&src(text))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("m.toml:{line}:")) && error.contains(what),
                "{error}"
            );
        }
    }

    #[test]
    fn field_names_come_from_the_type() {
        assert_eq!(keys_of::<Example>(), ["epochs", "lr"]);
    }
}

//! Property test: whatever is done to a valid matrix, parsing either accepts it or rejects it
//! as bad input with one message that names the file (and line:column where TOML says where),
//! never a panic. Parsing writes nothing (the end-to-end tests check the store side).

use std::path::Path;

use agml::error::is_bad_input;
use agml::matrix::{Matrix, Override};
use proptest::prelude::*;

const VALID: &str = r#"name = "p"
[axes]
dataset = ["synthetic"]
backbone = ["convnet-small"]
head = ["none", "attentive"]
loss = ["margin", "triplet"]
groups = [1, 2]
seed = [0, 1]
[defaults]
epochs = 2
batch_size = 8
samples_per_class = 2
embedding_size = 16
lr = 1e-3
[losses.triplet]
margin = 0.2
[[exclude]]
head = "attentive"
groups = 1
"#;

/// Edits that break a matrix in the ways users do.
fn mutation() -> impl Strategy<Value = (usize, String)> {
    let replacement = prop_oneof![
        Just(String::new()),
        Just("[]".to_string()),
        Just("0".to_string()),
        Just("\"oops\"".to_string()),
        Just("-1".to_string()),
        Just("[1, 1]".to_string()),
        Just("colour = 3\n".to_string()),
        Just("[".to_string()),
        Just("\"../../etc\"".to_string()),
        Just("1e999".to_string()),
        "[a-z=\\[\\]\",0-9 \n]{1,6}".prop_map(String::from),
    ];
    (0..VALID.len(), replacement)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn broken_matrices_are_bad_input_naming_the_file((at, text) in mutation(), cut in 0usize..12) {
        let mut at = at;
        while !VALID.is_char_boundary(at) {
            at -= 1;
        }
        let end = (at + cut).min(VALID.len());
        let mut end = end;
        while !VALID.is_char_boundary(end) {
            end -= 1;
        }
        let broken = format!("{}{}{}", &VALID[..at], text, &VALID[end..]);
        let path = Path::new("experiments/broken.toml");
        match Matrix::parse(path, &broken) {
            Ok(matrix) => prop_assert!(!matrix.cells.is_empty() || matrix.excluded + matrix.not_applicable > 0),
            Err(error) => {
                prop_assert!(is_bad_input(&error), "not bad input: {error:#}\n{broken}");
                let message = format!("{error:#}");
                prop_assert!(message.starts_with("experiments/broken.toml"), "{message}");
                prop_assert_eq!(message.lines().count(), 1, "{}", message);
            }
        }
    }
}

/// `--set` arguments as users get them wrong: real and made-up keys, values of every kind.
fn overrides() -> impl Strategy<Value = Vec<String>> {
    let key = prop_oneof![
        Just("defaults.epochs".to_string()),
        Just("defaults".to_string()),
        Just("axes.seed".to_string()),
        Just("axes.groups.first".to_string()),
        Just("axes".to_string()),
        Just("name".to_string()),
        Just("exclude".to_string()),
        Just("losses.triplet.margin".to_string()),
        Just("datasets.synthetic.classes".to_string()),
        Just("datasets.synthetic.root".to_string()),
        Just("__agml_set__".to_string()),
        "[a-z._\"]{1,8}".prop_map(String::from),
    ];
    let value = prop_oneof![
        Just("2".to_string()),
        Just("[0, 1]".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("-1".to_string()),
        Just("\"oops\"".to_string()),
        Just("{ epochs = 1 }".to_string()),
        Just("[[1]]".to_string()),
        "[a-z=\\[\\]{}\",0-9 \n]{0,6}".prop_map(String::from),
    ];
    proptest::collection::vec((key, value).prop_map(|(k, v)| format!("{k}={v}")), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bad_overrides_are_bad_input_naming_the_file_and_argument(args in overrides()) {
        let Ok(overrides) = args.iter().map(|a| a.parse::<Override>()).collect::<Result<Vec<_>, _>>() else {
            return Ok(()); // refused by the command line, with its own message
        };
        match Matrix::parse_with(Path::new("experiments/set.toml"), VALID, &overrides) {
            Ok(matrix) => prop_assert!(!matrix.cells.is_empty() || matrix.excluded + matrix.not_applicable > 0),
            Err(error) => {
                prop_assert!(is_bad_input(&error), "not bad input: {error:#}\n{args:?}");
                let message = format!("{error:#}");
                prop_assert!(message.starts_with("experiments/set.toml"), "{message}");
                prop_assert_eq!(message.lines().count(), 1, "{}", message);
                // Past the file's 27 lines only the overrides are: those errors name one.
                if message.contains("--set") {
                    let named = |a: &String| message.contains(&format!("--set {}:", a.replace('\n', "\\n")));
                    prop_assert!(args.iter().any(named), "{message}");
                }
            }
        }
    }
}

#[test]
fn the_unbroken_matrix_parses() {
    let matrix = Matrix::parse(Path::new("p.toml"), VALID).unwrap();
    // none: P = 1 (2 losses x 2 seeds); attentive: P = 2 only (2 x 2).
    assert_eq!(matrix.cells.len(), 8);
}

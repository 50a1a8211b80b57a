//! `kind = "csv"`: a researcher's own images listed in a table, in OpenMetricLearning's dataset
//! format: one row per image with `label`, `path` (relative to the root) and `split` (`train`,
//! `validation` or `test`); optional `is_query` and `is_gallery` (test rows: each query is
//! searched in the gallery, as In-Shop; without them, or with every test row both, each test
//! image is a query against all the others), `category` (read, not used) and a crop box
//! `x_1, x_2, y_1, y_2` (pixels, applied before the transforms). Every row is checked before
//! any training: a missing column, an unknown split or flag, a bad box, a label in both train
//! and test, a query class absent from the gallery and missing images are bad input naming the
//! table and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::photos::{Entry, Listing, bad_line};
use super::pipeline::{Crop, ImageFile};
use crate::error::BadInput;

/// What the loader expects of the table.
pub const LAYOUT: &str = "a CSV table with a header naming the columns label, path, split \
     (train, validation or test) and optionally is_query, is_gallery (0/1, test rows), category \
     and x_1, x_2, y_1, y_2 (a crop box in pixels); paths relative to the root";

const REQUIRED: [&str; 3] = ["label", "path", "split"];
/// The crop box's columns, in the order `crop` reads them.
const BOX: [&str; 4] = ["x_1", "x_2", "y_1", "y_2"];
const OPTIONAL: [&str; 3] = ["is_query", "is_gallery", "category"];

/// One row, with the line it is on.
struct Row {
    line: usize,
    label: String,
    path: String,
    split: Split,
    query: Option<bool>,
    gallery: Option<bool>,
    crop: Option<Crop>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Validation,
    Test,
}

/// Column positions of the header.
struct Columns {
    index: BTreeMap<String, usize>,
}

impl Columns {
    fn read(table: &Path, header: &csv::StringRecord) -> Result<Columns, BadInput> {
        let index: BTreeMap<String, usize> = (header.iter().enumerate())
            .map(|(i, name)| (name.trim().to_string(), i))
            .collect();
        let missing: Vec<&str> = (REQUIRED.iter().copied())
            .filter(|c| !index.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            return Err(bad_line(
                table,
                1,
                format!(
                    "missing column(s) {}; the header has {}",
                    missing.join(", "),
                    header.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let boxes = BOX.map(|c| index.contains_key(c));
        if boxes.iter().any(|&b| b) && !boxes.iter().all(|&b| b) {
            return Err(bad_line(
                table,
                1,
                "a crop box needs all four columns x_1, x_2, y_1, y_2",
            ));
        }
        // Other columns are allowed (tables carry more), but a misspelt flag is not ignored.
        let known = |k: &str| REQUIRED.contains(&k) || OPTIONAL.contains(&k) || BOX.contains(&k);
        for unknown in index.keys().filter(|k| !known(k)) {
            let near = ["is_query", "is_gallery"]
                .into_iter()
                .find(|c| unknown.replace('-', "_").eq_ignore_ascii_case(c));
            if let Some(near) = near {
                return Err(bad_line(
                    table,
                    1,
                    format!("column `{unknown}`: did you mean `{near}`?"),
                ));
            }
        }
        Ok(Columns { index })
    }

    fn get<'a>(&self, record: &'a csv::StringRecord, column: &str) -> Option<&'a str> {
        (self.index.get(column)).map(|&i| record.get(i).unwrap_or("").trim())
    }
}

fn flag(table: &Path, line: usize, column: &str, value: &str) -> Result<bool, BadInput> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "1.0" => Ok(true),
        "0" | "false" | "0.0" => Ok(false),
        _ => Err(bad_line(
            table,
            line,
            format!("{column} `{value}` is not 0/1 or true/false"),
        )),
    }
}

fn crop(
    table: &Path,
    line: usize,
    columns: &Columns,
    record: &csv::StringRecord,
) -> Result<Option<Crop>, BadInput> {
    let values = BOX.map(|c| columns.get(record, c));
    if values.iter().all(|v| v.is_none_or(str::is_empty)) {
        return Ok(None);
    }
    let mut numbers = [0u32; 4];
    for (n, (name, value)) in BOX.iter().zip(values).enumerate() {
        let value = value.unwrap_or("");
        // Boxes are often written as floats (12.0): whole pixels are required.
        let parsed = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v <= f64::from(u32::MAX));
        numbers[n] = parsed.ok_or_else(|| {
            bad_line(
                table,
                line,
                format!("{name} `{value}` is not a whole, non-negative pixel coordinate"),
            )
        })? as u32;
    }
    let [x1, x2, y1, y2] = numbers;
    if x2 <= x1 || y2 <= y1 {
        return Err(bad_line(
            table,
            line,
            format!("crop box x {x1}..{x2}, y {y1}..{y2} is empty (x_2 > x_1, y_2 > y_1 needed)"),
        ));
    }
    Ok(Some(Crop {
        x: x1,
        y: y1,
        width: x2 - x1,
        height: y2 - y1,
    }))
}

fn rows(table: &Path, bytes: &[u8]) -> Result<Vec<Row>, BadInput> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let header = reader.headers().map_err(|e| csv_error(table, &e))?.clone();
    let columns = Columns::read(table, &header)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(table, &e))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |c: &str| columns.get(&record, c).unwrap_or("");
        let (label, path) = (field("label"), field("path"));
        if label.is_empty() || path.is_empty() {
            return Err(bad_line(table, line, "empty label or path"));
        }
        let split = match field("split") {
            "train" => Split::Train,
            "validation" => Split::Validation,
            "test" => Split::Test,
            other => {
                return Err(bad_line(
                    table,
                    line,
                    format!("split `{other}` is not train, validation or test"),
                ));
            }
        };
        let flag_of = |c: &str| -> Result<Option<bool>, BadInput> {
            match columns.get(&record, c) {
                None | Some("") => Ok(None),
                Some(v) => flag(table, line, c, v).map(Some),
            }
        };
        rows.push(Row {
            line,
            label: label.to_string(),
            path: path.to_string(),
            split,
            query: flag_of("is_query")?,
            gallery: flag_of("is_gallery")?,
            crop: crop(table, line, &columns, &record)?,
        });
    }
    Ok(rows)
}

fn csv_error(table: &Path, error: &csv::Error) -> BadInput {
    match error.position() {
        Some(p) => bad_line(table, p.line() as usize, error),
        None => BadInput::new(format!("{}: {error}", table.display())),
    }
}

/// Class ids of the labels: the numbers themselves when every label is a non-negative
/// integer, else the position in the sorted labels.
fn class_ids(rows: &[Row]) -> BTreeMap<&str, u32> {
    let labels: BTreeSet<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let numeric: Option<Vec<u32>> = labels.iter().map(|l| l.parse::<u32>().ok()).collect();
    match numeric {
        Some(ids) => labels.into_iter().zip(ids).collect(),
        None => (labels.into_iter().enumerate())
            .map(|(i, l)| (l, i as u32))
            .collect(),
    }
}

/// The first line of each label among `rows` of `split`.
fn first_lines(rows: &[Row], split: Split) -> BTreeMap<&str, usize> {
    let mut lines = BTreeMap::new();
    for r in rows.iter().filter(|r| r.split == split) {
        lines.entry(r.label.as_str()).or_insert(r.line);
    }
    lines
}

/// Fails when a label of `a` is also one of `b`, naming a line of each.
fn disjoint(table: &Path, rows: &[Row], a: Split, b: Split, what: &str) -> Result<(), BadInput> {
    let b_lines = first_lines(rows, b);
    for (label, line) in first_lines(rows, a) {
        if let Some(other) = b_lines.get(label) {
            return Err(bad_line(
                table,
                *other,
                format!(
                    "label `{label}` is in {what} (also line {line}): the classes must be disjoint"
                ),
            ));
        }
    }
    Ok(())
}

/// Fails, counting them and naming the first five with their lines, when listed images are
/// not files under `root`.
fn check_paths(table: &Path, root: &Path, rows: &[Row]) -> Result<(), BadInput> {
    let missing: Vec<&Row> = rows
        .iter()
        .filter(|r| !root.join(&r.path).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = (missing.iter().take(5))
        .map(|r| format!("line {}: {}", r.line, r.path))
        .collect();
    Err(BadInput::new(format!(
        "{}: {} of {} listed images are not files under {}, e.g. {}",
        table.display(),
        missing.len(),
        rows.len(),
        root.display(),
        shown.join("; ")
    )))
}

/// Fails, naming the line, when a crop box lies wholly outside its image (its size read from
/// the file's header, in parallel).
fn check_boxes(table: &Path, root: &Path, rows: &[Row]) -> Result<(), BadInput> {
    let outside = |r: &Row| -> Option<String> {
        let crop = r.crop?;
        let size = image::ImageReader::open(root.join(&r.path))
            .and_then(|reader| reader.with_guessed_format())
            .map_err(|e| e.to_string())
            .and_then(|reader| reader.into_dimensions().map_err(|e| e.to_string()));
        match size {
            Ok((w, h)) => crop.within(w, h).err(),
            Err(e) => Some(format!("{}: cannot read the image's size: {e}", r.path)),
        }
    };
    let first = (rows.par_iter())
        .filter_map(|r| outside(r).map(|m| (r.line, m)))
        .min_by_key(|(line, _)| *line);
    match first {
        Some((line, message)) => Err(bad_line(table, line, message)),
        None => Ok(()),
    }
}

/// A table read and checked: its rows and its identity. Reading checks everything but the
/// images (a report needs the table, not the images); [`Table::listing`] checks those.
pub struct Table {
    path: PathBuf,
    rows: Vec<Row>,
    /// The dataset's identity in a cell's hash: the sha256 of the table's bytes, so that moving
    /// the data changes nothing and editing the table makes new cells.
    pub content_sha256: String,
}

impl Table {
    /// Reads and checks `table`. `class_disjoint_validation`: the validation rows' classes
    /// must not be training classes (the matrix's class-disjoint validation).
    pub fn read(table: &Path, class_disjoint_validation: bool) -> Result<Table, BadInput> {
        let bytes = std::fs::read(table).map_err(|e| {
            BadInput::new(format!(
                "{}: cannot read ({e}); expected {LAYOUT}",
                table.display()
            ))
        })?;
        let rows = rows(table, &bytes)?;
        check(table, &rows, class_disjoint_validation)?;
        Ok(Table {
            path: table.to_path_buf(),
            rows,
            content_sha256: format!("{:x}", Sha256::digest(&bytes)),
        })
    }

    /// True when rows of the table are a validation split.
    pub fn has_validation(&self) -> bool {
        self.rows.iter().any(|r| r.split == Split::Validation)
    }

    /// The listed images under `root`, after checking that each is a file there.
    pub fn listing(&self, root: &Path) -> Result<Listing, BadInput> {
        let (table, rows) = (self.path.as_path(), self.rows.as_slice());
        check_paths(table, root, rows)?;
        check_boxes(table, root, rows)?;
        let ids = class_ids(rows);
        let entry = |r: &Row| Entry {
            file: ImageFile {
                path: root.join(&r.path),
                crop: r.crop,
            },
            class: ids[r.label.as_str()],
        };
        let of =
            |s: Split| -> Vec<Entry> { rows.iter().filter(|r| r.split == s).map(entry).collect() };
        let (test, gallery) = match query_gallery(table, rows)? {
            None => (of(Split::Test), None),
            Some((queries, gallery)) => (
                queries.into_iter().map(entry).collect(),
                Some(gallery.into_iter().map(entry).collect()),
            ),
        };
        let validation = of(Split::Validation);
        Ok(Listing {
            train: of(Split::Train),
            test,
            gallery,
            validation: (!validation.is_empty()).then_some(validation),
        })
    }
}

/// The checks of a table's rows that need no image.
fn check(table: &Path, rows: &[Row], class_disjoint_validation: bool) -> Result<(), BadInput> {
    let count = |s: Split| rows.iter().filter(|r| r.split == s).count();
    if count(Split::Train) == 0 || count(Split::Test) == 0 {
        return Err(BadInput::new(format!(
            "{}: needs train and test rows ({} train, {} test)",
            table.display(),
            count(Split::Train),
            count(Split::Test)
        )));
    }
    disjoint(table, rows, Split::Train, Split::Test, "train and test")?;
    // Selecting the epoch on test classes would be selecting it on the test set.
    disjoint(
        table,
        rows,
        Split::Validation,
        Split::Test,
        "validation and test",
    )?;
    if class_disjoint_validation {
        disjoint(
            table,
            rows,
            Split::Train,
            Split::Validation,
            "train and validation",
        )?;
    }
    if let Some(r) = rows
        .iter()
        .find(|r| r.split != Split::Test && (r.query == Some(true) || r.gallery == Some(true)))
    {
        return Err(bad_line(
            table,
            r.line,
            "only test rows can be queries or gallery images",
        ));
    }
    query_gallery(table, rows).map(|_| ())
}

/// Query rows and gallery rows.
type QueriesAndGallery<'a> = (Vec<&'a Row>, Vec<&'a Row>);

/// The test rows as queries and gallery, each row one or the other; None when every test row
/// is both (or the table has no flags): leave-one-out retrieval among them.
fn query_gallery<'a>(
    table: &Path,
    rows: &'a [Row],
) -> Result<Option<QueriesAndGallery<'a>>, BadInput> {
    let test: Vec<&Row> = rows.iter().filter(|r| r.split == Split::Test).collect();
    if (test.iter()).all(|r| r.query != Some(false) && r.gallery != Some(false)) {
        return Ok(None);
    }
    let (mut queries, mut gallery) = (Vec::new(), Vec::new());
    for r in test {
        match (r.query, r.gallery) {
            (Some(true), Some(true)) => {
                return Err(bad_line(
                    table,
                    r.line,
                    "a test row both query and gallery (some rows are one or the other: list the \
                     image twice, once as each)",
                ));
            }
            (Some(true), _) => queries.push(r),
            (_, Some(true)) => gallery.push(r),
            _ => {
                return Err(bad_line(
                    table,
                    r.line,
                    "a test row neither query nor gallery (is_query and is_gallery both 0 or empty)",
                ));
            }
        }
    }
    if queries.is_empty() || gallery.is_empty() {
        return Err(BadInput::new(format!(
            "{}: query-vs-gallery evaluation needs queries and gallery images ({} and {})",
            table.display(),
            queries.len(),
            gallery.len()
        )));
    }
    let gallery_labels: BTreeSet<&str> = gallery.iter().map(|r| r.label.as_str()).collect();
    if let Some(r) = queries
        .iter()
        .find(|r| !gallery_labels.contains(r.label.as_str()))
    {
        return Err(bad_line(
            table,
            r.line,
            format!(
                "query of label `{}` has no gallery image of its label",
                r.label
            ),
        ));
    }
    Ok(Some((queries, gallery)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root with `images` as empty files and `df.csv` holding `table`.
    fn dataset(table: &str, images: &[&str]) -> tempfile::TempDir {
        let root = crate::data::photos::empty_files(images);
        std::fs::write(root.path().join("df.csv"), table).unwrap();
        root
    }

    fn listed(table: &str, images: &[&str]) -> Result<Listing, BadInput> {
        let root = dataset(table, images);
        // b.jpg is a real 20x10 image (a crop box's image size is read).
        image::RgbImage::new(20, 10)
            .save_with_format(root.path().join("b.jpg"), image::ImageFormat::Png)
            .unwrap();
        Table::read(&root.path().join("df.csv"), true)?.listing(root.path())
    }

    const IMAGES: [&str; 7] = [
        "a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg",
    ];

    fn error(table: &str) -> String {
        listed(table, &IMAGES).unwrap_err().to_string()
    }

    #[test]
    fn a_table_lists_train_validation_and_query_gallery_test_images() {
        let table = "label,path,split,is_query,is_gallery,x_1,x_2,y_1,y_2\n\
                     3,a.jpg,train,,,,,,\n3,b.jpg,train,,,1,11,2,7\n5,c.jpg,validation,,,,,,\n\
                     8,d.jpg,test,1,0,,,,\n8,e.jpg,test,0,1,,,,\n9,f.jpg,test,0,1,,,,\n";
        let listing = listed(table, &IMAGES).unwrap();
        let classes = |e: &[Entry]| e.iter().map(|e| e.class).collect::<Vec<_>>();
        assert_eq!(classes(&listing.train), [3, 3]);
        assert_eq!(classes(listing.validation.as_ref().unwrap()), [5]);
        assert_eq!(classes(&listing.test), [8]);
        assert_eq!(classes(listing.gallery.as_ref().unwrap()), [8, 9]);
        let crop = Crop {
            x: 1,
            y: 2,
            width: 10,
            height: 5,
        };
        assert_eq!(listing.train[1].file.crop, Some(crop));
        assert!(listing.train[1].file.path.ends_with("b.jpg"));
    }

    #[test]
    fn without_flags_or_with_every_test_row_both_the_test_set_is_leave_one_out() {
        for table in [
            "label,path,split\ncat,a.jpg,train\ncat,b.jpg,train\ndog,c.jpg,test\ndog,d.jpg,test\n",
            "label,path,split,is_query,is_gallery\ncat,a.jpg,train,0,0\ncat,b.jpg,train,0,0\n\
             dog,c.jpg,test,1,1\ndog,d.jpg,test,1,1\n",
        ] {
            let listing = listed(table, &IMAGES).unwrap();
            assert!(listing.gallery.is_none() && listing.validation.is_none());
            // Labels that are not numbers: their sorted order.
            assert_eq!(listing.test[0].class, 1);
            assert_eq!(listing.train[0].class, 0);
        }
    }

    #[test]
    fn bad_tables_name_the_file_and_line() {
        let cases = [
            ("label,path\n1,a.jpg\n", "df.csv:1: missing column(s) split"),
            (
                "label,path,split\n1,a.jpg,train\n2,b.jpg,dev\n",
                "df.csv:3: split `dev` is not train, validation or test",
            ),
            (
                "label,path,split\n1,a.jpg,train\n1,b.jpg,test\n",
                "df.csv:3: label `1` is in train and test (also line 2)",
            ),
            (
                "label,path,split\n1,a.jpg,train\n2,b.jpg,validation\n2,c.jpg,test\n",
                "df.csv:4: label `2` is in validation and test (also line 3)",
            ),
            (
                "label,path,split,is_query,is_gallery\n1,a.jpg,train,0,0\n\
                 2,b.jpg,test,1,0\n3,c.jpg,test,0,1\n",
                "df.csv:3: query of label `2` has no gallery image of its label",
            ),
            (
                "label,path,split,is_query,is_gallery\n1,a.jpg,train,,\n2,b.jpg,test,yes,0\n",
                "df.csv:3: is_query `yes` is not 0/1",
            ),
            (
                "label,path,split,x_1,x_2,y_1,y_2\n1,a.jpg,train,5,5,0,3\n2,b.jpg,test,,,,\n",
                "df.csv:2: crop box x 5..5, y 0..3 is empty",
            ),
            ("label,path,split\n1,a.jpg,train\n2,b.jpg\n", "df.csv:3:"),
            (
                "label,path,split,x_1\n1,a.jpg,train,3\n",
                "needs all four columns",
            ),
            (
                "label,path,split,Is-Query\n1,a.jpg,train,0\n",
                "df.csv:1: column `Is-Query`: did you mean `is_query`?",
            ),
        ];
        for (table, expected) in cases {
            let message = error(table);
            assert!(
                message.contains(expected),
                "{message}\nexpected: {expected}"
            );
        }
    }

    #[test]
    fn a_crop_box_outside_its_image_names_the_line() {
        let table = "label,path,split,x_1,x_2,y_1,y_2\n1,a.jpg,train,,,,\n1,b.jpg,train,5,30,12,15\n\
                     2,c.jpg,test,,,,\n";
        let message = error(table);
        assert!(
            message.contains("df.csv:3: crop box x 5..30, y 12..15 lies outside the 20x10 image"),
            "{message}"
        );
        let past_the_edge = table.replace("12,15", "8,15");
        assert!(listed(&past_the_edge, &IMAGES).is_ok());
    }

    #[test]
    fn missing_images_are_counted_and_the_first_named_with_their_lines() {
        let table = "label,path,split\n1,a.jpg,train\n1,x.jpg,train\n2,y.jpg,test\n2,b.jpg,test\n";
        let message = error(table);
        assert!(
            message.contains("2 of 4 listed images are not files")
                && message.contains("line 3: x.jpg; line 4: y.jpg"),
            "{message}"
        );
    }

    #[test]
    fn the_content_hash_follows_the_table_not_its_folder() {
        let table = "label,path,split\n1,a.jpg,train\n2,b.jpg,test\n";
        let (one, two) = (dataset(table, &IMAGES), dataset(table, &IMAGES));
        let hash = |root: &tempfile::TempDir| {
            (Table::read(&root.path().join("df.csv"), true).unwrap()).content_sha256
        };
        assert_eq!(hash(&one), hash(&two));
        std::fs::write(two.path().join("df.csv"), format!("{table}2,c.jpg,test\n")).unwrap();
        assert_ne!(hash(&one), hash(&two));
    }
}

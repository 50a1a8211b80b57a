//! A researcher's own dataset: `[datasets.<name>] kind = "csv"` (a table, src/data/table.rs) or
//! `kind = "image-folder"` (one folder per class, src/data/image_folder.rs). Its identity in a
//! cell's hash is its content's sha256, taken when the matrix is read and checked again when
//! the data loads, so that a run never trains on data other than the one its hash names.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::image_folder::Folder;
use super::photos::{Listing, PhotoConfig};
use super::table::Table;
use super::{Splits, Validation, photos};
use crate::error::BadInput;

/// How an own dataset lists its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnKind {
    /// OpenMetricLearning's CSV table.
    Csv,
    /// torchvision's ImageFolder layout, split into train/ and test/.
    ImageFolder,
}

/// An own dataset's part of a run's configuration: what it holds and how it is split and
/// transformed (where it lives is not part of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnConfig {
    /// The sha256 of the table's bytes (csv) or of the sorted image listing (image-folder).
    pub content_sha256: String,
    pub photo: PhotoConfig,
}

/// What the matrix says of where an own dataset lives: its root and, for a table, the table.
pub struct OwnPlace<'a> {
    pub kind: OwnKind,
    pub root: &'a Path,
    pub table: Option<&'a Path>,
}

/// A dataset read and checked, but for its images (what a report needs).
enum Read {
    Table(Table),
    Folder(Folder),
}

/// What reading the matrix learns of an own dataset.
pub struct OwnContent {
    pub sha256: String,
    /// The data lists its own validation split (table rows, a validation/ folder).
    pub has_validation: bool,
}

impl OwnPlace<'_> {
    /// The content's sha256, after every check that needs no image (reading the matrix).
    pub fn content(&self, validation: Validation) -> Result<OwnContent, BadInput> {
        Ok(match self.read(validation)? {
            Read::Table(table) => OwnContent {
                has_validation: table.has_validation(),
                sha256: table.content_sha256,
            },
            Read::Folder(folder) => OwnContent {
                has_validation: folder.has_validation(),
                sha256: folder.content_sha256,
            },
        })
    }

    fn read(&self, validation: Validation) -> Result<Read, BadInput> {
        let class_disjoint = validation == Validation::Classes;
        match (self.kind, self.table) {
            (OwnKind::Csv, Some(table)) => Table::read(table, class_disjoint).map(Read::Table),
            (OwnKind::Csv, None) => Err(BadInput::new(format!(
                "{}: a csv dataset needs its table",
                self.root.display()
            ))),
            (OwnKind::ImageFolder, _) => Folder::read(self.root, class_disjoint).map(Read::Folder),
        }
    }

    /// The listing of `config`'s dataset, after checking that the content is still the one the
    /// configuration names and that every image is a file.
    fn listing(&self, config: &OwnConfig) -> Result<Listing, BadInput> {
        let read = self.read(config.photo.validation)?;
        let (found, what) = match &read {
            Read::Table(table) => (&table.content_sha256, "table"),
            Read::Folder(folder) => (&folder.content_sha256, "image listing"),
        };
        if *found != config.content_sha256 {
            return Err(BadInput::new(format!(
                "{}: the {what} changed since the matrix was read (sha256 {} now, the cell \
                 names {}): plan again, and the edited data makes new cells",
                self.table.unwrap_or(self.root).display(),
                &found[..12],
                &config.content_sha256[..12.min(config.content_sha256.len())],
            )));
        }
        match read {
            Read::Table(table) => table.listing(self.root),
            // Walked just now: every listed image is a file.
            Read::Folder(folder) => Ok(folder.listing()),
        }
    }

    /// The splits of a run on `config`'s dataset.
    pub fn load(&self, config: &OwnConfig) -> Result<Splits, BadInput> {
        Ok(photos::splits(&self.listing(config)?, &config.photo))
    }
}

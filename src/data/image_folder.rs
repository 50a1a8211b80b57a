//! `kind = "image-folder"`: torchvision's ImageFolder layout, one folder per class under
//! `train/` and `test/` (and optionally `validation/`): `root/train/<class>/<image>`. The
//! classes of train and test must be disjoint, as retrieval on unseen classes needs; each
//! test image is a query against all the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::photos::{Entry, Listing};
use crate::error::BadInput;

/// What the loader expects under the root.
pub const LAYOUT: &str = "root/train/<class>/<image> and root/test/<class>/<image> (optionally \
     root/validation/<class>/<image>), classes disjoint between train and test";

/// File extensions read as images (any case): what the pipeline decodes.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The images of one split folder: class folder name -> sorted image paths relative to the
/// root (`train/<class>/<image>`).
type SplitTree = BTreeMap<String, Vec<String>>;

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, BadInput> {
    let entries = std::fs::read_dir(dir)
        .and_then(|d| d.collect::<Result<Vec<_>, _>>())
        .map_err(|e| BadInput::new(format!("{}: cannot read ({e})", dir.display())))?;
    Ok(entries)
}

fn is_image(path: &Path) -> bool {
    (path.extension().and_then(|e| e.to_str()))
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The class folders of `root/<split>` and their images; None when the folder is absent.
fn split_tree(root: &Path, split: &str) -> Result<Option<SplitTree>, BadInput> {
    let dir = root.join(split);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut tree = SplitTree::new();
    for class in read_dir(&dir)? {
        let class_path = class.path();
        let name = class.file_name().to_string_lossy().into_owned();
        if !class_path.is_dir() {
            if is_image(&class_path) {
                return Err(BadInput::new(format!(
                    "{}: an image directly under {split}/; images go in one folder per class \
                     ({LAYOUT})",
                    class_path.display()
                )));
            }
            continue;
        }
        let mut images: Vec<String> = (read_dir(&class_path)?.into_iter())
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_image(p))
            .map(|p| {
                format!(
                    "{split}/{name}/{}",
                    p.file_name().unwrap().to_string_lossy()
                )
            })
            .collect();
        if images.is_empty() {
            return Err(BadInput::new(format!(
                "{}: a class folder without images (extensions {})",
                class_path.display(),
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        images.sort();
        tree.insert(name, images);
    }
    Ok(Some(tree))
}

/// The folder's splits: train, test and the optional validation.
struct Tree {
    train: SplitTree,
    validation: Option<SplitTree>,
    test: SplitTree,
}

fn tree(root: &Path) -> Result<Tree, BadInput> {
    if !root.is_dir() {
        return Err(BadInput::new(format!(
            "{}: not a folder (expected {LAYOUT})",
            root.display()
        )));
    }
    let required = |split: &str| -> Result<SplitTree, BadInput> {
        match split_tree(root, split)? {
            Some(tree) if !tree.is_empty() => Ok(tree),
            _ => Err(BadInput::new(format!(
                "{}: no class folders (expected {LAYOUT})",
                root.join(split).display()
            ))),
        }
    };
    Ok(Tree {
        train: required("train")?,
        // An empty validation/ is none, as a table without validation rows.
        validation: split_tree(root, "validation")?.filter(|tree| !tree.is_empty()),
        test: required("test")?,
    })
}

/// Fails when a class folder is in both `a` and `b`.
fn disjoint(root: &Path, a: &SplitTree, b: &SplitTree, what: &str) -> Result<(), BadInput> {
    let shared: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    if shared.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = shared.iter().take(5).map(|s| s.as_str()).collect();
    Err(BadInput::new(format!(
        "{}: {} class folder(s) in both {what}, e.g. {}: the classes must be disjoint",
        root.display(),
        shared.len(),
        shown.join(", ")
    )))
}

/// An image folder walked and checked, with its identity.
pub struct Folder {
    root: PathBuf,
    tree: Tree,
    /// The dataset's identity in a cell's hash: the sha256 of the sorted listing of its images
    /// (paths relative to the root), so that moving the folder changes nothing and adding,
    /// removing or renaming an image makes new cells.
    pub content_sha256: String,
}

impl Folder {
    /// Walks `root`. `class_disjoint_validation`: validation classes must not be training
    /// classes.
    pub fn read(root: &Path, class_disjoint_validation: bool) -> Result<Folder, BadInput> {
        let tree = tree(root)?;
        disjoint(root, &tree.train, &tree.test, "train/ and test/")?;
        if let Some(validation) = &tree.validation {
            // Selecting the epoch on test classes would be selecting it on the test set.
            disjoint(root, validation, &tree.test, "validation/ and test/")?;
            if class_disjoint_validation {
                disjoint(root, &tree.train, validation, "train/ and validation/")?;
            }
        }
        let mut digest = Sha256::new();
        let splits = [
            Some(&tree.train),
            tree.validation.as_ref(),
            Some(&tree.test),
        ];
        for images in splits.into_iter().flatten().flat_map(|t| t.values()) {
            for image in images {
                digest.update(image.as_bytes());
                digest.update(b"\n");
            }
        }
        Ok(Folder {
            root: root.to_path_buf(),
            tree,
            content_sha256: format!("{:x}", digest.finalize()),
        })
    }

    /// True when the folder has a validation split (a non-empty validation/).
    pub fn has_validation(&self) -> bool {
        self.tree.validation.is_some()
    }

    /// The listed images. Classes are numbered in sorted folder-name order over all splits.
    pub fn listing(&self) -> Listing {
        let (root, tree) = (&self.root, &self.tree);
        let mut names: Vec<&String> = (tree.train.keys())
            .chain(tree.test.keys())
            .chain(tree.validation.iter().flat_map(|t| t.keys()))
            .collect();
        names.sort();
        names.dedup();
        let id = |name: &String| names.binary_search(&name).unwrap() as u32;
        let entries = |split: &SplitTree| -> Vec<Entry> {
            (split.iter())
                .flat_map(|(class, images)| {
                    images
                        .iter()
                        .map(move |image| Entry::new(root.join(image), id(class)))
                })
                .collect()
        };
        Listing {
            train: entries(&tree.train),
            test: entries(&tree.test),
            gallery: None,
            validation: tree.validation.as_ref().map(entries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::data::photos::empty_files as folder;

    const TREE: [&str; 6] = [
        "train/cat/1.jpg",
        "train/cat/2.JPG",
        "train/dog/1.png",
        "test/owl/1.jpg",
        "test/owl/2.jpg",
        "test/owl/notes.txt",
    ];

    #[test]
    fn classes_are_folders_numbered_in_name_order() {
        let root = folder(&TREE);
        // An empty validation/ is no validation split, as a table without validation rows.
        std::fs::create_dir(root.path().join("validation")).unwrap();
        let listing = Folder::read(root.path(), true).unwrap().listing();
        let classes = |e: &[Entry]| e.iter().map(|e| e.class).collect::<Vec<_>>();
        assert_eq!(classes(&listing.train), [0, 0, 1]);
        assert_eq!(classes(&listing.test), [2, 2]);
        assert!(listing.gallery.is_none() && listing.validation.is_none());
    }

    fn error(root: &Path) -> String {
        Folder::read(root, true).err().unwrap().to_string()
    }

    #[test]
    fn shared_classes_and_missing_splits_are_bad_input() {
        let shared = folder(&["train/cat/1.jpg", "test/cat/2.jpg"]);
        let message = error(shared.path());
        assert!(
            message.contains("1 class folder(s) in both train/ and test/, e.g. cat"),
            "{message}"
        );
        let peeking = folder(&["train/cat/1.jpg", "validation/owl/1.jpg", "test/owl/2.jpg"]);
        let message = error(peeking.path());
        assert!(
            message.contains("in both validation/ and test/, e.g. owl"),
            "{message}"
        );
        let no_test = folder(&["train/cat/1.jpg"]);
        let message = error(no_test.path());
        assert!(message.contains("test: no class folders"), "{message}");
        let loose = folder(&["train/1.jpg", "test/owl/1.jpg"]);
        let message = error(loose.path());
        assert!(
            message.contains("an image directly under train/"),
            "{message}"
        );
    }

    #[test]
    fn the_content_hash_follows_the_listing_not_the_folder() {
        let (one, two) = (folder(&TREE), folder(&TREE));
        let hash =
            |root: &tempfile::TempDir| Folder::read(root.path(), true).unwrap().content_sha256;
        assert_eq!(hash(&one), hash(&two));
        std::fs::write(two.path().join("test/owl/3.jpg"), b"").unwrap();
        assert_ne!(hash(&one), hash(&two));
    }
}

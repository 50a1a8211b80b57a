//! Stanford Online Products (Oh Song et al. 2016): 22,634 products, 120,053 images;
//! `Ebay_train.txt` lists the 11,318 training classes, `Ebay_test.txt` the 11,316 test classes.

use std::path::Path;

use super::photos::{Entry, Listing, bad_line, check_files, check_root, read_listing_file};
use crate::error::BadInput;

/// What the loader expects under the root.
pub const LAYOUT: &str = "Stanford_Online_Products/ with Ebay_train.txt and Ebay_test.txt \
     (header `image_id class_id super_class_id path`, paths relative to the folder)";

/// Lists the images of a Stanford Online Products folder.
pub fn list(root: &Path) -> Result<Listing, BadInput> {
    check_root(root, "Stanford Online Products", LAYOUT)?;
    let listing = Listing {
        train: read(root, "Ebay_train.txt")?,
        test: read(root, "Ebay_test.txt")?,
        gallery: None,
        validation: None,
    };
    check_files(&listing, root, LAYOUT)?;
    Ok(listing)
}

fn read(root: &Path, name: &str) -> Result<Vec<Entry>, BadInput> {
    let path = root.join(name);
    let text = read_listing_file(&path, LAYOUT)?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header))
            if header
                .split_whitespace()
                .eq(["image_id", "class_id", "super_class_id", "path"]) => {}
        _ => {
            return Err(bad_line(
                &path,
                1,
                "expected the header `image_id class_id super_class_id path`",
            ));
        }
    }
    let mut entries = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [_, class, _, file] = fields[..] else {
            return Err(bad_line(
                &path,
                i + 1,
                "expected 4 fields: image_id class_id super_class_id path",
            ));
        };
        let class: u32 = class
            .parse()
            .map_err(|_| bad_line(&path, i + 1, format!("class_id `{class}` is not a number")))?;
        entries.push(Entry::new(root.join(file), class));
    }
    if entries.is_empty() {
        return Err(BadInput::new(format!("{}: lists no image", path.display())));
    }
    Ok(entries)
}

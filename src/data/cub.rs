//! CUB-200-2011 (Wah et al. 2011): 200 bird species, 11,788 images. The first half of the
//! classes (1-100) train, the second half (101-200) test.

use std::collections::HashMap;
use std::path::Path;

use super::photos::{Entry, Listing, bad_line, check_files, check_root, read_listing_file};
use crate::error::BadInput;

/// What the loader expects under the root.
pub const LAYOUT: &str = "CUB_200_2011/ with images.txt (`<id> <class folder>/<file>.jpg`), \
     image_class_labels.txt (`<id> <class>`), classes.txt (`<class> <name>`) and images/";

/// Lists the images of a CUB-200-2011 folder.
pub fn list(root: &Path) -> Result<Listing, BadInput> {
    check_root(root, "CUB-200-2011", LAYOUT)?;
    let classes = pairs(&root.join("classes.txt"))?;
    let images = pairs(&root.join("images.txt"))?;
    let labels_path = root.join("image_class_labels.txt");
    let mut labels: HashMap<u32, u32> = HashMap::new();
    for (line, id, class) in pairs(&labels_path)? {
        let class: u32 = class.parse().map_err(|_| {
            bad_line(
                &labels_path,
                line,
                format!("class `{class}` is not a number"),
            )
        })?;
        if labels.insert(id, class).is_some() {
            return Err(bad_line(
                &labels_path,
                line,
                format!("image {id} is labelled twice"),
            ));
        }
    }
    let class_count = classes.len() as u32;
    if class_count < 2 {
        return Err(BadInput::new(format!(
            "{}: needs at least two classes (expected layout: {LAYOUT})",
            root.join("classes.txt").display()
        )));
    }
    let mut listing = Listing::default();
    let images_path = root.join("images.txt");
    for (line, id, file) in images {
        let Some(&class) = labels.get(&id) else {
            return Err(bad_line(
                &images_path,
                line,
                format!("image {id} has no line in image_class_labels.txt"),
            ));
        };
        if class == 0 || class > class_count {
            return Err(bad_line(
                &labels_path,
                line,
                format!("class {class} is not in classes.txt (1..={class_count})"),
            ));
        }
        let entry = Entry::new(root.join("images").join(file), class);
        if class <= class_count / 2 {
            listing.train.push(entry);
        } else {
            listing.test.push(entry);
        }
    }
    check_files(&listing, root, LAYOUT)?;
    Ok(listing)
}

/// `(line number, id, rest)` of each non-empty line of `<id> <rest>`.
fn pairs(path: &Path) -> Result<Vec<(usize, u32, String)>, BadInput> {
    let text = read_listing_file(path, LAYOUT)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad_line(path, line_no, "expected `<id> <value>`"))?;
        let id: u32 = id
            .parse()
            .map_err(|_| bad_line(path, line_no, format!("id `{id}` is not a number")))?;
        out.push((line_no, id, rest.trim().to_string()));
    }
    Ok(out)
}

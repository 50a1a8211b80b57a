//! In-Shop Clothes Retrieval (Liu et al. 2016): `list_eval_partition.txt` assigns every image
//! to train, query or gallery; retrieval is each query against the gallery.

use std::path::Path;

use super::photos::{Entry, Listing, bad_line, check_files, check_root, read_listing_file};
use crate::error::BadInput;

/// What the loader expects under the root.
pub const LAYOUT: &str = "In-shop Clothes folder with list_eval_partition.txt (a count line, \
     the header `image_name item_id evaluation_status`, then `img/... id_<n> train|query|gallery`) \
     and the img/ folder it names";

/// Lists the images of an In-Shop Clothes folder.
pub fn list(root: &Path) -> Result<Listing, BadInput> {
    check_root(root, "In-Shop Clothes", LAYOUT)?;
    let path = root.join("list_eval_partition.txt");
    let text = read_listing_file(&path, LAYOUT)?;
    let mut lines = text.lines().enumerate();
    let count: usize = lines
        .next()
        .and_then(|(_, l)| l.trim().parse().ok())
        .ok_or_else(|| bad_line(&path, 1, "expected the number of images"))?;
    match lines.next() {
        Some((_, header))
            if header
                .split_whitespace()
                .eq(["image_name", "item_id", "evaluation_status"]) => {}
        _ => {
            return Err(bad_line(
                &path,
                2,
                "expected the header `image_name item_id evaluation_status`",
            ));
        }
    }
    let (mut train, mut query, mut gallery) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let [file, item, status] = fields[..] else {
            return Err(bad_line(
                &path,
                i + 1,
                "expected 3 fields: image_name item_id evaluation_status",
            ));
        };
        let class: u32 = item
            .strip_prefix("id_")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                bad_line(&path, i + 1, format!("item id `{item}` is not id_<number>"))
            })?;
        let entry = Entry::new(root.join(file), class);
        match status {
            "train" => train.push(entry),
            "query" => query.push(entry),
            "gallery" => gallery.push(entry),
            other => {
                return Err(bad_line(
                    &path,
                    i + 1,
                    format!("evaluation_status `{other}` is not train, query or gallery"),
                ));
            }
        }
    }
    let listed = train.len() + query.len() + gallery.len();
    if listed != count {
        return Err(bad_line(
            &path,
            1,
            format!("announces {count} images, lists {listed}"),
        ));
    }
    if train.is_empty() || query.is_empty() || gallery.is_empty() {
        return Err(BadInput::new(format!(
            "{}: needs train, query and gallery images (expected layout: {LAYOUT})",
            path.display()
        )));
    }
    let listing = Listing {
        train,
        test: query,
        gallery: Some(gallery),
        validation: None,
    };
    check_files(&listing, root, LAYOUT)?;
    Ok(listing)
}

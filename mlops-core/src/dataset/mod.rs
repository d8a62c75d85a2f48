//! Data sets: class maps, listing class folders into manifests, manifest files, splits.

mod classes;
mod listing;
mod manifest;
mod split;

pub use classes::ClassMap;
pub use listing::{ListOptions, Listing, ListingReport, list_dataset};
pub use manifest::{Manifest, ManifestFormat, Sample};
pub use split::{Split, SplitOptions, split};

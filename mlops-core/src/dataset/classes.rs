//! Class maps: class names and their ids.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Class names in id order: the class with id `i` is `names()[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ClassMap {
    names: Vec<String>,
}

impl ClassMap {
    /// A class map from names in id order; names must be non-empty and unique.
    pub fn new<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.is_empty() {
            return Err(Error::invalid("classes", "at least one class is needed"));
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::invalid(
                    "classes",
                    format!("class {i} has an empty name"),
                ));
            }
            if names[..i].contains(name) {
                return Err(Error::invalid(
                    "classes",
                    format!("class `{name}` appears twice"),
                ));
            }
        }
        Ok(ClassMap { names })
    }

    /// Names sorted alphabetically (byte order), the default: it gives the original's
    /// `background 0, brick 1, concrete 2, ground 3, wood 4`.
    pub fn alphabetical<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort();
        ClassMap::new(names)
    }

    /// The class map of class-folder manifests: class id `i` is named by the first folder of
    /// its samples' `image_path`s (`brick/img_001.png` -> `brick`), as [`crate::dataset::list_dataset`]
    /// writes them. An error names the sample whose folder disagrees with its id's others, a
    /// sample without a folder, and an id between 0 and the largest without any sample.
    pub fn from_manifests(manifests: &[&crate::dataset::Manifest]) -> Result<Self> {
        let mut names: Vec<Option<String>> = Vec::new();
        for sample in manifests.iter().flat_map(|m| &m.samples) {
            let folder = sample
                .image_path
                .split(['/', '\\'])
                .next()
                .filter(|f| *f != sample.image_path && !f.is_empty())
                .ok_or_else(|| {
                    Error::invalid(
                        "classes",
                        format!(
                            "{} is not inside a class folder; give the class names",
                            sample.image_path
                        ),
                    )
                })?;
            let id = sample.target as usize;
            if names.len() <= id {
                names.resize(id + 1, None);
            }
            match &names[id] {
                Some(known) if known != folder => {
                    return Err(Error::invalid(
                        "classes",
                        format!(
                            "class id {id} is `{known}` elsewhere but {} is in `{folder}`",
                            sample.image_path
                        ),
                    ));
                }
                Some(_) => {}
                None => names[id] = Some(folder.to_string()),
            }
        }
        let names = names
            .into_iter()
            .enumerate()
            .map(|(id, name)| {
                name.ok_or_else(|| {
                    Error::invalid("classes", format!("class id {id} has no sample to name it"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        ClassMap::new(names)
    }

    /// The names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: a class map has at least one class.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of a class name.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }

    /// The name of a class id.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }
}

impl TryFrom<Vec<String>> for ClassMap {
    type Error = Error;

    fn try_from(names: Vec<String>) -> Result<Self> {
        ClassMap::new(names)
    }
}

impl From<ClassMap> for Vec<String> {
    fn from(map: ClassMap) -> Self {
        map.names
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod from_manifests_tests {
    use super::ClassMap;
    use crate::dataset::{Manifest, Sample};

    #[test]
    fn classes_come_from_the_folders_and_disagreements_are_named() {
        let m = Manifest::new(vec![
            Sample::new("wood/a.png", 1),
            Sample::new("brick/b.png", 0),
        ]);
        let t = Manifest::new(vec![Sample::new("wood/c.png", 1)]);
        let classes = ClassMap::from_manifests(&[&m, &t]).unwrap();
        assert_eq!(classes.names(), ["brick", "wood"]);
        let bad = Manifest::new(vec![Sample::new("brick/x.png", 1)]);
        let e = ClassMap::from_manifests(&[&m, &bad])
            .unwrap_err()
            .to_string();
        assert!(e.contains("brick/x.png") && e.contains("`wood`"), "{e}");
        let gap = Manifest::new(vec![Sample::new("wood/a.png", 2)]);
        let e = ClassMap::from_manifests(&[&gap]).unwrap_err().to_string();
        assert!(e.contains("class id 0"), "{e}");
        let flat = Manifest::new(vec![Sample::new("a.png", 0)]);
        assert!(ClassMap::from_manifests(&[&flat]).is_err());
    }
}

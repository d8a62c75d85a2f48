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

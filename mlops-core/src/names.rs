//! One spelling per enum: the names that serde, the command lines, Python and error messages
//! all use, from one table per enum (`FromStr` reads them, `Display` writes them).

/// Implements `name()`, `NAMES`, `Display`, `FromStr` (errors name `$param`) and serde (as the
/// name string) for a unit-variant enum.
macro_rules! named_enum {
    ($ty:ident, $param:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name used by serde, command lines and Python.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::error::Error;

            fn from_str(s: &str) -> $crate::error::Result<Self> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err($crate::error::Error::invalid(
                        $param,
                        format!("unknown {} `{other}`; expected one of {}", $param, Self::NAMES.join(", ")),
                    )),
                }
            }
        }

        $crate::names::serde_as_name!($ty);
    };
}

/// Serde for a type with `Display` and `FromStr`: written and read as its name.
macro_rules! serde_as_name {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use named_enum;
pub(crate) use serde_as_name;

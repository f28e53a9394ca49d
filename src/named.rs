//! Enums known by name: a decoder's kind, an architecture, a training objective, an
//! initialisation, a precision, a preprocessing, a downloadable model, a view. Each has `ALL` and
//! `name()`; [`named_enum!`] derives from those the one `from_name`, the command line's choices
//! (clap) and the names in files and run records (serde), so every front end and file spells
//! them alike.

/// `from_name` and `names`, `clap::ValueEnum`, `serde::Serialize` and `serde::Deserialize` for
/// `$t`, from `$t::ALL` and `$t::name()`. Names are matched without regard to case.
macro_rules! named_enum {
    ($t:ty) => {
        impl $t {
            /// The value named `s` (any case), or `None`.
            pub fn from_name(s: &str) -> Option<Self> {
                <$t>::ALL.into_iter().find(|v| v.name().eq_ignore_ascii_case(s.trim()))
            }

            /// Every name, for messages: "a, b, c".
            pub fn names() -> String {
                <$t>::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
            }
        }

        impl clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &<$t>::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.name()))
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                <$t>::from_name(&name).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {name:?}, expected one of {}", <$t>::names()))
                })
            }
        }
    };
}

pub(crate) use named_enum;

//! Enums known by name: a decoder's kind, a training objective, an initialisation, a precision.
//! Each has `ALL` and `name()`; [`named_enum!`] derives from those the command line's choices
//! (clap) and the names in run records (serde), so every front end and file spells them alike.

/// `clap::ValueEnum`, `serde::Serialize` and `serde::Deserialize` for `$t`, from `$t::ALL` and
/// `$t::name()`.
macro_rules! named_enum {
    ($t:ty) => {
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
                <$t>::ALL.into_iter().find(|v| v.name() == name).ok_or_else(|| {
                    let names: Vec<&str> = <$t>::ALL.iter().map(|v| v.name()).collect();
                    serde::de::Error::custom(format!("unknown {name:?}, expected one of {}", names.join(", ")))
                })
            }
        }
    };
}

pub(crate) use named_enum;

//! `wire_enum!`: an enum whose variants travel as fixed JSON strings, with the conversions
//! every such enum needs (to and from its wire string, `Display`, serde both ways).

/// A wire string that names no variant of the enum asked for (a newer peer's, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownWireName;

impl core::fmt::Display for UnknownWireName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not a name this version of unstick knows")
    }
}

impl core::error::Error for UnknownWireName {}

/// Declares `enum $name { $variant, ... }` with each variant's wire string, and:
/// `ALL`, `as_str`, `FromStr` (error [`UnknownWireName`]), `Display`, `Serialize` and
/// `Deserialize` as that string.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl core::str::FromStr for $name {
            type Err = $crate::wire_enum::UnknownWireName;

            fn from_str(text: &str) -> Result<$name, Self::Err> {
                match text {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::wire_enum::UnknownWireName),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                struct WireName;
                impl serde::de::Visitor<'_> for WireName {
                    type Value = $name;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str(concat!("one of the ", stringify!($name), " wire strings"))
                    }
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        text.parse().map_err(|_| E::unknown_variant(text, &[$($wire),+]))
                    }
                }
                deserializer.deserialize_str(WireName)
            }
        }
    };
}

pub(crate) use wire_enum;

//! Values the file spells as one of a fixed set of keywords, read and written through one table per type.

/// A value the file spells as one of a fixed set of keywords. Reading (`Ctx::keyword`) and writing
/// ([`Keyword::keyword`]) use the same table.
pub(crate) trait Keyword: Copy + PartialEq + 'static {
    /// What messages call it: "unknown WHAT ...; expected ...".
    const WHAT: &'static str;

    /// Every value with its keyword, in the order messages list them.
    fn keywords() -> Vec<(&'static str, Self)>;

    /// This value's keyword.
    fn keyword(self) -> &'static str {
        Self::keywords()
            .into_iter()
            .find_map(|(name, v)| (v == self).then_some(name))
            .expect("every value has a keyword")
    }
}

/// Implements [`Keyword`]: `keyword!(Type, "what", "keyword" => Type::Value, ...)`, or, for a type that lists
/// its own values and keywords (`ALL` and `as_str`), `keyword!(Type, "what", own)`.
macro_rules! keyword {
    ($ty:ty, $what:literal, own) => {
        impl $crate::config::keyword::Keyword for $ty {
            const WHAT: &'static str = $what;

            fn keywords() -> Vec<(&'static str, Self)> {
                <$ty>::ALL.iter().map(|&v| (v.as_str(), v)).collect()
            }
        }
    };
    ($ty:ty, $what:literal, $($name:literal => $value:expr),+ $(,)?) => {
        impl $crate::config::keyword::Keyword for $ty {
            const WHAT: &'static str = $what;

            fn keywords() -> Vec<(&'static str, Self)> {
                vec![$(($name, $value)),+]
            }
        }
    };
}
pub(crate) use keyword;

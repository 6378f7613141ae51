//! Closed sets of names stored as text (statuses, kinds, entity names), read back strictly: each
//! type's one parse ([`Stored::from_text`]) decides, and text it does not know is an error naming
//! the column and the value ([`super::unknown_value`]), never a default.
//!
//! The types themselves live in the lowest layer that fits (`gridline_sync` for the wire's
//! names, `model` for the server's own), each with one `as_str` that writes the same text.

use gridline_sync::EntityKind;
use serde::{Deserialize, Deserializer};

use super::unknown_value;
use crate::model::{Basis, PeriodStatus, ProposalStatus};

/// A value stored as one of a closed set of names.
pub trait Stored: Sized {
    /// The value the stored `text` names, if it names one.
    fn from_text(text: &str) -> Option<Self>;
}

/// The value of `column` whose stored text is `text`.
pub fn parse<T: Stored>(column: &str, text: &str) -> Result<T, sqlx::Error> {
    T::from_text(text).ok_or_else(|| unknown_value(column, text))
}

/// The value of a nullable `column`.
pub fn parse_opt<T: Stored>(column: &str, text: Option<&str>) -> Result<Option<T>, sqlx::Error> {
    text.map(|t| parse(column, t)).transpose()
}

/// [`parse`] for rows read as JSON ([`super::json_rows`]): the same check and the same message.
pub fn from_json<'de, D: Deserializer<'de>, T: Stored>(d: D, column: &str) -> Result<T, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    parse(column, &text).map_err(serde::de::Error::custom)
}

/// [`Stored`] for types whose one parse is `parse(&str) -> Option<Self>`.
macro_rules! stored_by_parse {
    ($($t:ty),* $(,)?) => {
        $(impl Stored for $t {
            fn from_text(text: &str) -> Option<Self> {
                <$t>::parse(text)
            }
        })*
    };
}

stored_by_parse!(EntityKind, Basis, PeriodStatus, ProposalStatus);

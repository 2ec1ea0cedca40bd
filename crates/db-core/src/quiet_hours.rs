//! A user's night: the hours, in their own time zone, when no character writes first.
//! Time zones are IANA names (`Europe/Paris`), checked against the tz database compiled into
//! the binary (`chrono-tz`), so a container without system tzdata computes the same hours.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};

pub use chrono_tz::Tz;

/// The IANA zone of that exact name (`Europe/Paris`, `America/New_York`, `UTC`); `None` for
/// anything else.
pub fn time_zone(name: &str) -> Option<Tz> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    Tz::from_str(name).ok()
}

/// Every zone name [`time_zone`] accepts.
pub fn time_zone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())
}

/// Local hours `[start, end)` during which a character does not write first; they may wrap
/// midnight (`22-8`, the default). `start == end`: no quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: u32,
    pub end: u32,
}

impl Default for QuietHours {
    fn default() -> Self {
        Self { start: 22, end: 8 }
    }
}

impl FromStr for QuietHours {
    type Err = String;

    /// `22-8` (from 22:00 to 08:00 local time) or `off`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "off" {
            return Ok(Self { start: 0, end: 0 });
        }
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected START-END hours, e.g. 22-8, or off"))?;
        let hour = |h: &str| match h.trim().parse::<u32>() {
            Ok(h) if h < 24 => Ok(h),
            _ => Err(format!("{h:?} is not an hour from 0 to 23")),
        };
        Ok(Self {
            start: hour(a)?,
            end: hour(b)?,
        })
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            f.write_str("off")
        } else {
            write!(f, "{:02}:00-{:02}:00", self.start, self.end)
        }
    }
}

impl QuietHours {
    /// Whether the local hour `h` is quiet.
    pub fn contains(&self, h: u32) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => self.start <= h && h < self.end,
            std::cmp::Ordering::Greater => h >= self.start || h < self.end,
        }
    }

    /// The first instant at or after `at` that is not quiet in `tz`: `at` itself by day, else
    /// the end of the night (the next `end` o'clock, local time; an hour later if a daylight
    /// saving jump skips that very time).
    pub fn next_allowed(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&tz);
        if !self.contains(local.hour()) {
            return at;
        }
        let mut day = local.date_naive();
        if self.start > self.end && local.hour() >= self.start {
            day = day.succ_opt().unwrap_or(day);
        }
        let mut morning = day.and_time(NaiveTime::from_hms_opt(self.end, 0, 0).unwrap_or_default());
        for _ in 0..3 {
            if let Some(t) = tz.from_local_datetime(&morning).earliest() {
                return t.with_timezone(&Utc).max(at);
            }
            morning += Duration::hours(1);
        }
        at + Duration::hours(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn zones_are_iana_names_only() {
        assert!(time_zone("Europe/Paris").is_some());
        assert!(time_zone("UTC").is_some());
        assert!(time_zone("Etc/GMT+10").is_some());
        assert!(time_zone("Mars/Olympus_Mons").is_none());
        assert!(time_zone("").is_none());
        assert!(time_zone("europe/paris ").is_none());
    }

    #[test]
    fn the_night_ends_at_the_local_morning() {
        let q = QuietHours::default();
        let paris = Tz::Europe__Paris;
        // 15:00 in Paris (winter, UTC+1): day, now.
        let day = utc("2026-01-10T14:00:00Z");
        assert_eq!(q.next_allowed(day, paris), day);
        // 23:30 in Paris: tomorrow 08:00 Paris = 07:00 UTC.
        assert_eq!(
            q.next_allowed(utc("2026-01-10T22:30:00Z"), paris),
            utc("2026-01-11T07:00:00Z")
        );
        // 03:00 in Paris: the same day's 08:00.
        assert_eq!(
            q.next_allowed(utc("2026-01-11T02:00:00Z"), paris),
            utc("2026-01-11T07:00:00Z")
        );
        // New York at 23:00 local (04:00 UTC): 08:00 local = 13:00 UTC.
        assert_eq!(
            q.next_allowed(utc("2026-01-11T04:00:00Z"), Tz::America__New_York),
            utc("2026-01-11T13:00:00Z")
        );
        let off: QuietHours = "off".parse().unwrap_or_default();
        assert_eq!(
            off.next_allowed(utc("2026-01-10T22:30:00Z"), paris),
            utc("2026-01-10T22:30:00Z")
        );
        assert_eq!(
            "0-7".parse::<QuietHours>(),
            Ok(QuietHours { start: 0, end: 7 })
        );
        assert!("25-7".parse::<QuietHours>().is_err());
        assert!("x".parse::<QuietHours>().is_err());
    }
}

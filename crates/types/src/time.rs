//! Time as data: the policy core takes it as an input and never reads a clock.

use std::fmt;

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds in one day.
    pub const DAY_MS: i64 = 86_400_000;

    /// The UTC instant `year-month-day hour:minute:second.millis` of the
    /// proleptic Gregorian calendar, or `None` if a field is out of range
    /// (month 1–12, day valid for the month, hour < 24, minute < 60,
    /// second < 60, millis < 1000). The inverse of [`Display`](fmt::Display).
    pub fn from_utc(
        year: i64,
        month: u32,
        day: u32,
        hms: (u32, u32, u32),
        millis: u32,
    ) -> Option<Self> {
        let (h, mi, s) = hms;
        if !(1..=12).contains(&month)
            || day == 0
            || h >= 24
            || mi >= 60
            || s >= 60
            || millis >= 1000
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        if civil_from_days(days) != (year, month, day) {
            return None;
        }
        let secs = days
            .checked_mul(86_400)?
            .checked_add(i64::from(h * 3600 + mi * 60 + s))?;
        secs.checked_mul(1000)?
            .checked_add(i64::from(millis))
            .map(Self)
    }

    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This time plus whole days (saturating).
    pub const fn plus_days(self, days: i64) -> Self {
        Self(self.0.saturating_add(days.saturating_mul(Self::DAY_MS)))
    }

    /// This time plus milliseconds (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Now, from the system clock. Only I/O shells call this; pure code takes
    /// time as an argument.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T15:59:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_utc_inverts_display() {
        for ms in [0, 1, 951_782_400_000, 1_795_000_000_123, -86_400_001] {
            let t = Timestamp(ms);
            let s = t.to_string();
            let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap();
            let y: i64 = s[..4].parse().unwrap_or(1969);
            let back = Timestamp::from_utc(
                y,
                n(5, 7),
                n(8, 10),
                (n(11, 13), n(14, 16), n(17, 19)),
                n(20, 23),
            );
            assert_eq!(back, Some(t), "{s}");
        }
        assert_eq!(Timestamp::from_utc(2026, 2, 29, (0, 0, 0), 0), None);
        assert_eq!(
            Timestamp::from_utc(2024, 2, 29, (0, 0, 0), 0)
                .map(|t| t.to_string())
                .as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
        assert_eq!(Timestamp::from_utc(2026, 13, 1, (0, 0, 0), 0), None);
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_449_540_123).to_string(),
            "2026-11-23T15:59:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn day_arithmetic() {
        assert_eq!(Timestamp(0).plus_days(30).millis(), 30 * Timestamp::DAY_MS);
        assert_eq!(Timestamp(i64::MAX).plus_days(1), Timestamp(i64::MAX));
    }
}

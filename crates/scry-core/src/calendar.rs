//! Calendar arithmetic on UTC days, for budgets that renew per day and month and for report ages.
//!
//! Pure conversions between days since 1970-01-01 and (year, month, day), after Howard Hinnant's
//! `days_from_civil` / `civil_from_days`; reading the clock is the caller's business.

/// A UTC calendar day as (year, month, day).
pub type Date = (i64, u32, u32);

/// The date `days` days after 1970-01-01.
pub fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A Unix-milliseconds time split into its UTC calendar parts, for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub date: Date,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millis: i64,
}

impl UtcTime {
    pub fn from_ms(ms: i64) -> UtcTime {
        let in_day = ms.rem_euclid(86_400_000);
        let secs = in_day / 1000;
        UtcTime {
            date: civil_from_days(ms.div_euclid(86_400_000)),
            hour: secs / 3600,
            minute: (secs / 60) % 60,
            second: secs % 60,
            millis: in_day % 1000,
        }
    }
}

/// `2026-11-24` for a Unix-milliseconds time.
pub fn date_text(ms: i64) -> String {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days from 1970-01-01 to `date`.
pub fn days_from_civil((year, month, day): Date) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the date at the start of `"YYYY-MM-DD HH:MM:SS"` (or `"YYYY-MM-DD"`) as days since
/// 1970-01-01; `None` when it is not a valid date.
pub fn days_from_timestamp(timestamp: &str) -> Option<i64> {
    let date = timestamp.trim().get(..10)?;
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil((year, month, day)))
}

/// Parses `"YYYY-MM-DD HH:MM:SS"`, `"YYYY-MM-DDTHH:MM:SS[.fff][Z]"` or `"YYYY-MM-DD"` (UTC) as
/// Unix milliseconds; `None` when it is not a valid time.
pub fn ms_from_timestamp(timestamp: &str) -> Option<i64> {
    us_from_timestamp(timestamp).map(|us| us.div_euclid(1000))
}

/// [`ms_from_timestamp`] in Unix microseconds: a fraction is read to the µs (digits past the
/// sixth are dropped), as TAXII clients send back the `date_added` they were given.
pub fn us_from_timestamp(timestamp: &str) -> Option<i64> {
    let text = timestamp.trim();
    let days = days_from_timestamp(text)?;
    let rest = text.get(10..)?.trim_start_matches([' ', 'T']);
    let rest = rest.strip_suffix('Z').unwrap_or(rest);
    let (clock, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let mut seconds = 0_i64;
    if !clock.is_empty() {
        let mut parts = clock.split(':');
        let mut next = |limit: i64| -> Option<i64> {
            let n: i64 = parts.next()?.parse().ok()?;
            (0..limit).contains(&n).then_some(n)
        };
        seconds = next(24)? * 3600 + next(60)? * 60 + next(61)?;
    }
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let micros = match fraction.get(..6.min(fraction.len())) {
        Some(digits) if !digits.is_empty() => {
            let n: i64 = digits.parse().ok()?;
            n * 10_i64.pow(6 - digits.len() as u32)
        }
        _ => 0,
    };
    Some((days * 86_400 + seconds) * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        for days in [-1000, 0, 59, 60, 19_782, 20_415, 100_000] {
            assert_eq!(days_from_civil(civil_from_days(days)), days);
        }
        assert_eq!(days_from_timestamp("2024-02-29 10:00:00"), Some(19_782));
        assert_eq!(days_from_timestamp("2024-13-01"), None);
        assert_eq!(days_from_timestamp("soon"), None);
        assert_eq!(ms_from_timestamp("1970-01-02 00:00:01"), Some(86_401_000));
        assert_eq!(ms_from_timestamp("1970-01-01T00:00:00.25Z"), Some(250));
        assert_eq!(ms_from_timestamp("1970-01-02"), Some(86_400_000));
        assert_eq!(ms_from_timestamp("1970-01-01 25:00:00"), None);
        assert_eq!(ms_from_timestamp("N/A"), None);
        assert_eq!(
            us_from_timestamp("1970-01-01T00:00:01.000123Z"),
            Some(1_000_123)
        );
        assert_eq!(us_from_timestamp("1970-01-01T00:00:00.5Z"), Some(500_000));
        assert_eq!(
            us_from_timestamp("1970-01-01T00:00:00.1234567Z"),
            Some(123_456)
        );
        assert_eq!(us_from_timestamp("1970-01-01T00:00:00.12x"), None);
        let t = UtcTime::from_ms(-1);
        assert_eq!(
            (t.date, t.hour, t.minute, t.second, t.millis),
            ((1969, 12, 31), 23, 59, 59, 999)
        );
    }
}

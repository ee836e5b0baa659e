//! STIX timestamps: RFC 3339 UTC with millisecond precision, as `2026-11-23T08:00:00.000Z`.

use scry_core::calendar::{civil_from_days, ms_from_timestamp};

/// A Unix-milliseconds time as a STIX timestamp.
pub fn stix_time(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// A vendor's time text (`2026-10-20 08:00:00`, ISO forms, or a date) as a STIX timestamp.
pub fn parse_text_time(text: &str) -> Option<String> {
    ms_from_timestamp(text).map(stix_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_reads_times() {
        assert_eq!(stix_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(stix_time(1_795_420_800_123), "2026-11-23T08:00:00.123Z");
        assert_eq!(
            parse_text_time("2026-10-20 08:00:00").as_deref(),
            Some("2026-10-20T08:00:00.000Z")
        );
        assert_eq!(parse_text_time(""), None);
    }
}

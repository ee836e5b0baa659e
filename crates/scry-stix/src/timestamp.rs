//! STIX timestamps: RFC 3339 UTC with millisecond precision, as `2026-11-23T08:00:00.000Z`, or
//! microsecond precision for commit stamps.

use scry_core::calendar::{UtcTime, ms_from_timestamp};

/// A Unix-milliseconds time as a STIX timestamp.
pub fn stix_time(ms: i64) -> String {
    let t = UtcTime::from_ms(ms);
    let (y, m, d) = t.date;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.hour, t.minute, t.second, t.millis
    )
}

/// A Unix-microseconds time as a STIX timestamp with microseconds, for what is stamped by the
/// store's commit clock (versions, TAXII's `date_added`).
pub fn stix_time_us(us: i64) -> String {
    let ms = us.div_euclid(1000);
    let t = UtcTime::from_ms(ms);
    let (y, m, d) = t.date;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}{:03}Z",
        t.hour,
        t.minute,
        t.second,
        t.millis,
        us.rem_euclid(1000)
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
            stix_time_us(1_795_420_800_123_456),
            "2026-11-23T08:00:00.123456Z"
        );
        assert_eq!(
            parse_text_time("2026-10-20 08:00:00").as_deref(),
            Some("2026-10-20T08:00:00.000Z")
        );
        assert_eq!(parse_text_time(""), None);
    }
}

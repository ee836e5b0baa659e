//! The wall clock sources read, given to them at construction ([`crate::SourceContext`]): the
//! budget's UTC day, when a kept answer expires, how old a domain report is, when a feed is due.
//! A run uses [`SystemClock`]; a test gives a [`ManualClock`] and moves it, so a day boundary or
//! an answer's expiry is crossed without waiting. Durations of calls (latency, timeouts) are
//! measured on the monotonic clock and are not part of this.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scry_core::calendar::{Date, civil_from_days};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Tells the time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Today's UTC date.
    fn today(&self) -> Date {
        civil_from_days(self.now_ms().div_euclid(DAY_MS))
    }

    /// Today as days since 1970-01-01 (UTC).
    fn days(&self) -> i64 {
        self.now_ms().div_euclid(DAY_MS)
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until it is moved.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now_ms` (Unix milliseconds).
    pub fn at(now_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(now_ms)))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `now_ms`.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The clock a source uses when none is given.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_crosses_midnight_when_moved() {
        // 2026-12-04 23:59:59.000 UTC.
        let clock = ManualClock::at(1_796_428_799_000);
        assert_eq!(clock.today(), (2026, 12, 4));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.today(), (2026, 12, 5));
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}

//! The wall clock, passed in: the server reads the time only through a [`Clock`] it is given
//! (`ServerOptions::clock`), so tests can run leases, expiry and recovery at any date.
//! Timeouts measure elapsed time with tokio's monotonic clock instead; that is not this.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the storage server reads the date.
pub trait Clock: Send + Sync + 'static {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;

    /// Whole seconds since the Unix epoch (what leases and the database record).
    fn now_secs(&self) -> u64 {
        self.now().as_secs()
    }
}

/// The system's clock (a clock set before 1970 reads as the epoch).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that stands still until it is set or advanced (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(secs: u64) -> ManualClock {
        ManualClock(AtomicU64::new(secs))
    }

    pub fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC (Tahoe's `iso_utc(sep="T")`) of a time since the epoch.
pub fn iso_utc(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_utc_as_tahoe_writes_it() {
        assert_eq!(iso_utc(Duration::ZERO), "1970-01-01T00:00:00.000000");
        // 2024-02-29 (a leap day) 13:14:15.000123
        let d = Duration::from_secs(1_709_212_455) + Duration::from_micros(123);
        assert_eq!(iso_utc(d), "2024-02-29T13:14:15.000123");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(100);
        assert_eq!(c.now_secs(), 100);
        c.advance(5);
        assert_eq!(c.now_secs(), 105);
        c.set(7);
        assert_eq!(c.now(), Duration::from_secs(7));
        assert!(SystemClock.now_secs() > 1_700_000_000);
    }
}

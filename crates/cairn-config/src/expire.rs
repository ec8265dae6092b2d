//! `[storage] expire.*`: the lease-expiry settings of `tahoe.cfg` as Tahoe 1.20 parses them
//! (`client.py::get_anonymous_storage_server`, `time_format`); the storage server's lease
//! database applies them (`cairn_storage::leasedb::gc`).

/// `expire.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpirationMode {
    /// `age`, with `expire.override_lease_duration` in seconds if set.
    Age {
        override_lease_duration: Option<u64>,
    },
    /// `cutoff-date`, with `expire.cutoff_date` as seconds since the epoch (UTC midnight).
    CutoffDate { cutoff: u64 },
}

/// The `[storage] expire.*` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpirationPolicy {
    /// `expire.enabled` (default false: nothing is ever deleted).
    pub enabled: bool,
    pub mode: ExpirationMode,
    /// `expire.immutable` (default true).
    pub immutable: bool,
    /// `expire.mutable` (default true).
    pub mutable: bool,
}

impl Default for ExpirationPolicy {
    /// Tahoe's defaults: disabled, `age` mode, no override, both share types.
    fn default() -> Self {
        ExpirationPolicy {
            enabled: false,
            mode: ExpirationMode::Age {
                override_lease_duration: None,
            },
            immutable: true,
            mutable: true,
        }
    }
}

/// A bad `expire.*` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("[storage] {key} = {value:?}: {reason}")]
    Bad {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("[storage] {0} is required when {1}")]
    Missing(&'static str, &'static str),
}

fn parse_bool(key: &'static str, v: &str) -> Result<bool, PolicyError> {
    // Tahoe's `_Config.get_config(..., boolean=True)` (ConfigParser.getboolean).
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(PolicyError::Bad {
            key,
            value: v.into(),
            reason: "not a boolean".into(),
        }),
    }
}

impl ExpirationPolicy {
    /// Build from the `[storage]` section, `get("expire.enabled")` etc. returning the raw
    /// value if set. Mirrors `client.py::get_anonymous_storage_server`: `expire.mode` is
    /// required when enabled (default `age` otherwise); `expire.cutoff_date` is required in
    /// `cutoff-date` mode (even when disabled, as in Tahoe); the override is parsed
    /// whenever present.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        let enabled = match get("expire.enabled") {
            Some(v) => parse_bool("expire.enabled", &v)?,
            None => false,
        };
        let mode = match get("expire.mode") {
            Some(m) => m,
            None if enabled => {
                return Err(PolicyError::Missing("expire.mode", "expire.enabled = true"))
            }
            None => "age".to_string(),
        };
        let override_d = match get("expire.override_lease_duration") {
            Some(v) => Some(parse_duration(&v).map_err(|reason| PolicyError::Bad {
                key: "expire.override_lease_duration",
                value: v.clone(),
                reason,
            })?),
            None => None,
        };
        let mode = match mode.as_str() {
            "age" => ExpirationMode::Age {
                override_lease_duration: override_d.map(|d| d.max(0) as u64),
            },
            "cutoff-date" => {
                let v = get("expire.cutoff_date").ok_or(PolicyError::Missing(
                    "expire.cutoff_date",
                    "expire.mode = cutoff-date",
                ))?;
                let cutoff = parse_date(&v).map_err(|reason| PolicyError::Bad {
                    key: "expire.cutoff_date",
                    value: v.clone(),
                    reason,
                })?;
                ExpirationMode::CutoffDate {
                    cutoff: cutoff.max(0) as u64,
                }
            }
            other => {
                return Err(PolicyError::Bad {
                    key: "expire.mode",
                    value: other.into(),
                    reason: "must be 'age' or 'cutoff-date'".into(),
                })
            }
        };
        let immutable = match get("expire.immutable") {
            Some(v) => parse_bool("expire.immutable", &v)?,
            None => true,
        };
        let mutable = match get("expire.mutable") {
            Some(v) => parse_bool("expire.mutable", &v)?,
            None => true,
        };
        Ok(ExpirationPolicy {
            enabled,
            mode,
            immutable,
            mutable,
        })
    }

    /// Things an operator should be told at startup (the server logs them).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.enabled {
            if let ExpirationMode::Age {
                override_lease_duration: None,
            } = self.mode
            {
                w.push(
                    "expire.enabled = true with expire.mode = age but no \
                     expire.override_lease_duration: as in Tahoe-LAFS, this never expires any \
                     lease. Set expire.override_lease_duration = 31 days to expire leases at \
                     their recorded expiration time."
                        .to_string(),
                );
            }
            if !self.immutable && !self.mutable {
                w.push(
                    "expire.immutable and expire.mutable are both false: nothing expires".into(),
                );
            }
        }
        w
    }
}

/// Tahoe's `time_format.parse_duration`: a number and a unit of day(s), month(s)/mo
/// (31 days) or year(s) (365 days), e.g. "31 days", "1 month", "2mo", "1year". Negative
/// numbers are accepted as Tahoe's `int()` does. Returns seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    const DAY: i64 = 24 * 60 * 60;
    let orig = s;
    let mut s = s;
    if let Some(r) = s.strip_suffix('s') {
        s = r;
    }
    let (unit, rest) = if let Some(r) = s.strip_suffix("day") {
        (DAY, r)
    } else if let Some(r) = s.strip_suffix("month") {
        (31 * DAY, r)
    } else if let Some(r) = s.strip_suffix("mo") {
        (31 * DAY, r)
    } else if let Some(r) = s.strip_suffix("year") {
        (365 * DAY, r)
    } else {
        return Err(format!("no unit (like day, month, or year) in '{orig}'"));
    };
    let n: i64 = rest.trim().parse().map_err(|_| {
        format!(
            "not a number of {}: '{orig}'",
            if unit == DAY { "days" } else { "units" }
        )
    })?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("duration too large: '{orig}'"))
}

/// Tahoe's `time_format.parse_date`: `YYYY-MM-DD` → seconds since the epoch of that day's
/// UTC midnight. Like Tahoe's regular expression, text after the date is not allowed to
/// form a time here (Tahoe appends "T00:00:00" itself); day overflow is rejected.
pub fn parse_date(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(format!("not a YYYY-MM-DD date: '{s}'"));
    }
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(format!("not a YYYY-MM-DD date: '{s}'"));
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("month or day out of range: '{s}'"));
    }
    Ok(days_from_civil(y, m, d) * 86_400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

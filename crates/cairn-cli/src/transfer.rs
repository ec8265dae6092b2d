//! What `put` and `get` share: the progress bar, the runtime, the summary.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr with bytes, rate and ETA, drawn only when stderr is a terminal.
#[derive(Clone)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// `total`: the size when known.
    pub fn new(total: Option<u64>, prefix: &'static str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = match total {
            Some(t) => {
                let b = ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix} {bar:25} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            }
            None => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix} {spinner} {bytes} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            }
        };
        bar.set_prefix(prefix);
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(Some(bar))
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// The transfer is done and the other side works: a spinner with `msg` and the time so far.
    pub fn waiting(&self, msg: &'static str) {
        if let Some(b) = &self.0 {
            b.set_style(
                ProgressStyle::with_template("{prefix} {spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_message(msg);
        }
    }

    pub fn clear(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// The machine-readable result of a transfer (`--json`).
#[derive(serde::Serialize)]
pub struct Summary {
    pub cap: String,
    pub size: u64,
    pub seconds: f64,
    /// Throughput in MiB (2^20 bytes) per second.
    pub mib_per_s: f64,
}

impl Summary {
    pub fn new(cap: String, size: u64, started: Instant) -> Summary {
        let seconds = started.elapsed().as_secs_f64();
        let mib_per_s = if seconds > 0.0 {
            size as f64 / (1u64 << 20) as f64 / seconds
        } else {
            0.0
        };
        Summary {
            cap,
            size,
            seconds: round3(seconds),
            mib_per_s: round3(mib_per_s),
        }
    }

    /// One line for a person: `64.0 MiB in 1.234 s, 51.9 MiB/s`.
    pub fn human(&self) -> String {
        format!(
            "{} in {:.3} s, {:.1} MiB/s",
            human_bytes(self.size),
            self.seconds,
            self.mib_per_s
        )
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A small runtime for one command: the gateway connection and the copy loop.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

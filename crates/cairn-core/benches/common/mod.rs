//! What the summary-printing benches (`chk`, `sha256mb`) share.

use std::time::{Duration, Instant};

use criterion::Criterion;

/// The shortest of `runs` timed calls of `f`.
pub fn best_of<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

/// A bench's `main`: print its `summary`, then (unless run with `--summary`) run its
/// criterion groups.
pub fn main(summary: fn(), criterion_groups: fn(&mut Criterion)) {
    summary();
    if std::env::args().any(|a| a == "--summary") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c);
    c.final_summary();
}

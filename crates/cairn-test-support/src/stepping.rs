//! The bounded stepping loop every machine driver of the tests runs in: a driver feeds a
//! machine one step at a time, and gives up after a fixed number of steps so that a
//! livelock fails the test instead of hanging it.

use std::ops::ControlFlow;

/// The step limit of the mutable machine drivers on the [`crate::fake_grid`].
pub const MAX_STEPS: usize = 10_000;

/// Calls `step` until it breaks, at most `limit` times. Returns what it broke with, or
/// `None` when the limit was reached first.
pub fn bounded<T>(limit: usize, mut step: impl FnMut() -> ControlFlow<T>) -> Option<T> {
    for _ in 0..limit {
        if let ControlFlow::Break(t) = step() {
            return Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_when_told_or_at_the_limit() {
        let mut n = 0;
        let r = bounded(10, || {
            n += 1;
            if n == 3 {
                ControlFlow::Break(n)
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(r, Some(3));
        let mut calls = 0;
        let r: Option<()> = bounded(5, || {
            calls += 1;
            ControlFlow::Continue(())
        });
        assert_eq!((r, calls), (None, 5));
    }
}

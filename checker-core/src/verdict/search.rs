//! Bisection over sample counts: the one implementation the planner and the verdict share.

/// Narrows `lo..hi` to two adjacent counts and returns the upper one, where `pred(lo)` is
/// false (or `lo` is a floor that needs no asking) and `pred(hi)` is true.
///
/// `pred` is asked only strictly between `lo` and `hi`. When it is monotonic there (false,
/// then true) the result is the smallest count above `lo` at which it holds.
pub(crate) fn narrow(mut lo: u64, mut hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    while hi.saturating_sub(lo) > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The smallest `k` in `0..=n` for which `pred` holds (`pred` false then true), or `n + 1`.
pub(crate) fn first_true(n: u64, pred: impl Fn(u64) -> bool) -> u64 {
    if pred(0) {
        0
    } else {
        narrow(0, n.saturating_add(1), pred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn first_true_finds_the_edge_or_says_none() {
        for n in [0u64, 1, 2, 7, 100, 1000] {
            for edge in 0..=n + 1 {
                assert_eq!(first_true(n, |k| k >= edge), edge, "n {n} edge {edge}");
            }
        }
    }

    #[test]
    fn narrow_asks_only_strictly_inside_and_finds_the_edge() {
        let asked = RefCell::new(Vec::new());
        let found = narrow(10, 1000, |k| {
            asked.borrow_mut().push(k);
            k >= 321
        });
        assert_eq!(found, 321);
        assert!(asked.borrow().iter().all(|&k| 10 < k && k < 1000));
        // Adjacent or inverted bounds: nothing to ask, `hi` is the answer.
        assert_eq!(narrow(5, 6, |_| unreachable!()), 6);
        assert_eq!(narrow(6, 5, |_| unreachable!()), 5);
    }
}

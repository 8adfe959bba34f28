//! The one `lock` helper: mutexes whose data stays consistent at every unlock.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, carrying on with the data if a panicking thread poisoned the lock (every
/// mutex in the checker keeps its data consistent at each unlock, so it is still good).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = Mutex::new(1);
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = lock(&m);
                *g = 2;
                panic!("poison it");
            })
            .join()
        });
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2);
    }
}

//! The descriptor limit: every echo and admin connection holds one file descriptor, so
//! at start-up the soft `RLIMIT_NOFILE` is raised (never past the hard limit) to what
//! the connection limits need. Below that, accepts fail with `EMFILE` and connections
//! beyond the limit hang in the backlog instead of being closed and counted.

use std::io;

use crate::config::Config;

/// Descriptors kept for everything but connections: listeners, the event loop, logging.
pub const MARGIN: u64 = 32;

/// The descriptors `config` needs: the connection limit, the admin limit and [`MARGIN`].
pub fn needed(config: &Config) -> u64 {
    let admin = config
        .admin_port
        .map_or(0, |_| config.admin_limits.max_connections);
    let listeners = config.ports.len() + usize::from(config.admin_port.is_some());
    [config.max_connections, admin, listeners]
        .into_iter()
        .map(|n| u64::try_from(n).unwrap_or(u64::MAX))
        .fold(MARGIN, u64::saturating_add)
}

/// The descriptor limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the ceiling for the soft one).
    pub hard: u64,
    /// What the configuration needs.
    pub needed: u64,
}

impl Descriptors {
    /// Whether the soft limit now covers the need.
    pub fn enough(&self) -> bool {
        self.soft >= self.needed
    }
}

/// Raises the soft descriptor limit to `needed`, or as far as the hard limit allows.
pub fn raise(needed: u64) -> io::Result<Descriptors> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let mut soft = before;
    if soft < needed {
        let target = needed.min(hard);
        rlimit::Resource::NOFILE.set(target, hard)?;
        soft = rlimit::Resource::NOFILE.get_soft()?;
    }
    Ok(Descriptors {
        before,
        soft,
        hard,
        needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_counts_both_connection_limits_and_the_margin() {
        let mut config = Config::new(vec![9000, 9001], "one".into());
        config.max_connections = 1000;
        assert_eq!(needed(&config), 1000 + 64 + 3 + MARGIN);
        config.admin_port = None;
        assert_eq!(needed(&config), 1000 + 2 + MARGIN);
    }
}

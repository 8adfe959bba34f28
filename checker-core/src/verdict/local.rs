//! Local causes of errors: this machine's connection-tracking table or local ports.
//!
//! Many short connections fill the kernel's conntrack table (then it drops packets:
//! resets and connect timeouts) or use up the local port range (connect fails with
//! EADDRNOTAVAIL). Neither is the target's fault. This module decides, from readings
//! taken by the caller, whether such a cause is likely; it reads nothing itself.

use serde::Serialize;

/// A table or range counts as nearly full from this share on.
pub const NEARLY_FULL: f64 = 0.9;

/// What was read on this machine during the run (each `None` when not available).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LocalReadings {
    /// Highest `/proc/sys/net/netfilter/nf_conntrack_count` seen.
    pub conntrack_count: Option<u64>,
    /// `/proc/sys/net/netfilter/nf_conntrack_max`.
    pub conntrack_max: Option<u64>,
    /// Size of `/proc/sys/net/ipv4/ip_local_port_range`.
    pub local_ports: Option<u64>,
    /// Highest count of TCP sockets in use or in TIME_WAIT (`/proc/net/sockstat{,6}`).
    pub tcp_sockets: Option<u64>,
}

/// Which local resource ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalCauseKind {
    /// The connection-tracking table is (nearly) full: the kernel drops packets.
    ConntrackFull,
    /// No local port was free for new connections.
    LocalPortsExhausted,
}

/// A likely local cause of the errors, with one sentence for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalCause {
    /// What ran out.
    pub kind: LocalCauseKind,
    /// What was seen, as a sentence fragment.
    pub message: String,
}

fn nearly_full(used: u64, size: u64) -> bool {
    size > 0 && used as f64 >= NEARLY_FULL * size as f64
}

/// The likely local cause of `errors` failed samples, of which `no_local_address`
/// failed with EADDRNOTAVAIL, given the readings; `None` without errors or evidence.
pub fn likely_cause(
    readings: &LocalReadings,
    errors: u64,
    no_local_address: u64,
) -> Option<LocalCause> {
    if errors == 0 {
        return None;
    }
    if let (Some(count), Some(max)) = (readings.conntrack_count, readings.conntrack_max)
        && nearly_full(count, max)
    {
        return Some(LocalCause {
            kind: LocalCauseKind::ConntrackFull,
            message: format!(
                "this machine's connection-tracking table is nearly full ({count} of {max} \
                 entries), so the kernel drops packets (see `dmesg | grep conntrack`)"
            ),
        });
    }
    if no_local_address > 0 {
        let range = readings.local_ports.map_or(String::new(), |n| {
            format!(" of the {n} in the local port range")
        });
        return Some(LocalCause {
            kind: LocalCauseKind::LocalPortsExhausted,
            message: format!(
                "{no_local_address} connections found no free local port{range} \
                 (EADDRNOTAVAIL) on this machine"
            ),
        });
    }
    // The machine-wide socket count (`tcp_sockets`) is reported but decides nothing: a
    // local port is only used up per destination (address and port), so tens of
    // thousands of sockets to many destinations leave every one of them plenty. Only
    // EADDRNOTAVAIL, above, shows that connect found no port.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(count: u64, max: u64) -> LocalReadings {
        LocalReadings {
            conntrack_count: Some(count),
            conntrack_max: Some(max),
            local_ports: Some(28_232),
            tcp_sockets: Some(100),
        }
    }

    #[test]
    fn a_nearly_full_conntrack_table_is_named_only_when_errors_occurred() {
        let full = readings(259_000, 262_144);
        let cause = likely_cause(&full, 12, 0).expect("a cause");
        assert_eq!(cause.kind, LocalCauseKind::ConntrackFull);
        assert!(cause.message.contains("259000 of 262144"), "{cause:?}");
        assert_eq!(likely_cause(&full, 0, 0), None);
        assert_eq!(likely_cause(&readings(1_000, 262_144), 12, 0), None);
        assert_eq!(likely_cause(&readings(5, 0), 12, 0), None);
    }

    #[test]
    fn only_eaddrnotavail_names_the_local_ports() {
        let calm = readings(10, 262_144);
        let cause = likely_cause(&calm, 7, 7).expect("a cause");
        assert_eq!(cause.kind, LocalCauseKind::LocalPortsExhausted);
        assert!(cause.message.contains("7 connections"), "{cause:?}");
        assert!(cause.message.contains("28232"), "{cause:?}");
        // More sockets machine-wide than the port range holds (seen here after many
        // rehearsals) is not exhaustion: ports are used up per destination.
        let busy = LocalReadings {
            tcp_sockets: Some(36_000),
            ..calm
        };
        assert_eq!(likely_cause(&busy, 3, 0), None);
    }

    #[test]
    fn without_readings_nothing_is_blamed_but_eaddrnotavail() {
        let none = LocalReadings::default();
        assert_eq!(likely_cause(&none, 50, 0), None);
        assert_eq!(
            likely_cause(&none, 50, 1).map(|c| c.kind),
            Some(LocalCauseKind::LocalPortsExhausted)
        );
    }
}

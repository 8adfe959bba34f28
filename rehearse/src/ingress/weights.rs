//! Group weights spread over servers: what a proxy that weighs servers, not groups
//! (HAProxy's slots, Envoy's endpoints), is given so that each group's share holds.

use std::collections::BTreeMap;

/// The largest per-server weight handed out: HAProxy's maximum (Envoy's endpoint weights
/// are given the same, so both proxies see the same figures).
const MAX_WEIGHT: u64 = 256;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Per-server weights such that each group's servers together get `weight / total`.
///
/// Exact when the scaled integers fit HAProxy's 0..=256, and then multiplied up to use
/// as much of that range as possible (the hash ring's resolution); otherwise scaled
/// down and rounded (never to 0 for a group with traffic).
pub fn server_weights(
    weights: &BTreeMap<String, u32>,
    replicas: &BTreeMap<&str, u64>,
) -> BTreeMap<String, u64> {
    let live: Vec<(&str, u64, u64)> = replicas
        .iter()
        .map(|(g, n)| (*g, u64::from(weights.get(*g).copied().unwrap_or(0)), *n))
        .filter(|(_, _, n)| *n > 0)
        .collect();
    let lcm = live
        .iter()
        .filter(|(_, w, _)| *w > 0)
        .fold(1u64, |l, (_, _, n)| l / gcd(l, *n) * n);
    let raw: Vec<(&str, u64)> = live.iter().map(|(g, w, n)| (*g, w * lcm / n)).collect();
    let divisor = raw.iter().fold(0, |d, (_, r)| gcd(d, *r)).max(1);
    let mut out: BTreeMap<String, u64> = raw
        .iter()
        .map(|(g, r)| ((*g).to_owned(), r / divisor))
        .collect();
    let max = out.values().copied().max().unwrap_or(0);
    if max > MAX_WEIGHT {
        for v in out.values_mut() {
            if *v > 0 {
                *v = ((*v * MAX_WEIGHT) as f64 / max as f64).round().max(1.0) as u64;
            }
        }
    } else if let Some(scale) = MAX_WEIGHT.checked_div(max) {
        // `balance random` draws on a consistent-hash ring whose points per server grow
        // with its weight and are placed by hashing: with small weights a server's arcs
        // add up to a share several points off its weight (80/20 with 2 canary servers at weight 3
        // against 3 stable at 8 measured 85.0/15.0, the same in every run). The largest
        // exact multiple that fits 256 gives every server as many points as possible.
        for v in out.values_mut() {
            *v *= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(g, w)| ((*g).to_owned(), *w)).collect()
    }

    #[test]
    fn group_shares_survive_uneven_replica_counts() {
        let w = weights(&[("stable", 80), ("canary", 20)]);
        let r: BTreeMap<&str, u64> = [("stable", 4), ("canary", 3)].into();
        let s = server_weights(&w, &r);
        // 4 servers x 3 = 12 for stable, 3 servers x 1 = 3 for canary: 80/20, scaled
        // up to HAProxy's largest weights (the ring's resolution).
        assert_eq!((s["stable"], s["canary"]), (255, 85));
        let w = weights(&[("stable", 90), ("canary", 10)]);
        let r: BTreeMap<&str, u64> = [("stable", 3), ("canary", 3)].into();
        let s = server_weights(&w, &r);
        assert_eq!((s["stable"], s["canary"]), (252, 28));
        // A canary replica gone: the two left share the canary's 20 points.
        let w = weights(&[("stable", 80), ("canary", 20)]);
        let r: BTreeMap<&str, u64> = [("stable", 3), ("canary", 2)].into();
        let s = server_weights(&w, &r);
        assert_eq!((s["stable"], s["canary"]), (256, 96));
        assert_eq!(3 * 256 * 20, 2 * 96 * 80);
    }

    #[test]
    fn zero_weights_and_oversized_weights() {
        let w = weights(&[("stable", 100), ("canary", 0)]);
        let r: BTreeMap<&str, u64> = [("stable", 3), ("canary", 3)].into();
        let s = server_weights(&w, &r);
        assert_eq!((s["stable"], s["canary"]), (256, 0));
        let w = weights(&[("stable", 999), ("canary", 1)]);
        let r: BTreeMap<&str, u64> = [("stable", 1), ("canary", 1)].into();
        let s = server_weights(&w, &r);
        assert_eq!((s["stable"], s["canary"]), (256, 1));
    }
}

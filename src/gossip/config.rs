//! SWIM + Lifeguard knobs, read from a scenario's `[cluster.config]` table.
//!
//! Defaults are memberlist's `DefaultLANConfig`, with every Lifeguard part switched on.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::process::NodeId;

/// How a member walks its membership list when choosing whom to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOrder {
    /// SWIM §4.3: traverse the list, reshuffle it after each full pass. Bounds the time
    /// between two probes of the same member by (2n − 1) periods.
    #[default]
    RoundRobin,
    /// SWIM §3.1's analysis: a uniformly random member each period.
    Random,
}

/// Per-node settings: discovery metadata and optional late join / graceful leave.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSpec {
    /// The node these settings are for.
    pub id: NodeId,
    /// Free-form tags (e.g. `zone = "a"`), spread with the member's alive updates.
    pub tags: BTreeMap<String, String>,
    /// Services this member offers, spread with membership.
    pub services: Vec<String>,
    /// Local time at which the member joins; before it, it is silent.
    pub join_at_ms: Option<u64>,
    /// Local time at which the member leaves gracefully.
    pub leave_at_ms: Option<u64>,
}

/// The `[cluster.config]` table of a SWIM scenario. Defaults are memberlist's LAN
/// settings (times in milliseconds, on each member's monotonic clock).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SwimConfig {
    /// Protocol period T' (SWIM §3.1), before Lifeguard scaling.
    pub probe_interval_ms: u64,
    /// Wait for a direct ack before asking ping-req intermediaries.
    pub probe_timeout_ms: u64,
    /// k: ping-req intermediaries per failed direct probe.
    pub indirect_checks: usize,
    /// How each period's probe target is picked.
    pub probe_order: ProbeOrder,
    /// α: Min suspicion timeout = α · max(1, log10 n) · probe interval.
    pub suspicion_mult: u64,
    /// β: Max suspicion timeout = β · Min (only with `lifeguard_dynamic_suspicion`).
    pub suspicion_max_timeout_mult: u64,
    /// K: independent confirmations that bring the timeout down to Min; `None` means
    /// memberlist's `suspicion_mult − 2`.
    pub suspicion_confirmations: Option<u64>,
    /// λ: each update is piggybacked at most λ · ⌈log10(n + 1)⌉ times.
    pub retransmit_mult: u64,
    /// Most updates carried by one message (memberlist fills a 1400-byte packet).
    pub max_piggyback: usize,
    /// Time between gossip rounds (at least 1).
    pub gossip_interval_ms: u64,
    /// Members each gossip round sends to.
    pub gossip_nodes: usize,
    /// Full-state exchange with one random member; 0 disables it. Scaled above 32
    /// members as memberlist does.
    pub push_pull_interval_ms: u64,
    /// Seed members a joining member contacts (it knows only these at first).
    pub seeds: Vec<NodeId>,
    /// Lifeguard LHA-Probe: Local Health Multiplier scales probe interval and timeout.
    pub lifeguard_lhm: bool,
    /// Saturation S of the Local Health Multiplier: the score stays in 0..=S.
    pub lhm_max: u32,
    /// Lifeguard LHA-Suspicion: timeout shrinks from Max to Min with confirmations.
    pub lifeguard_dynamic_suspicion: bool,
    /// Lifeguard Buddy System: a ping to a suspect carries the suspicion.
    pub lifeguard_buddy: bool,
    /// A ping-req intermediary sends a nack at this percentage of the probe timeout.
    pub nack_percent: u64,
    /// Per-node metadata and join/leave times; nodes not listed use the defaults.
    pub nodes: Vec<NodeSpec>,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            probe_interval_ms: 1_000,
            probe_timeout_ms: 500,
            indirect_checks: 3,
            probe_order: ProbeOrder::RoundRobin,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            suspicion_confirmations: None,
            retransmit_mult: 4,
            max_piggyback: 12,
            gossip_interval_ms: 200,
            gossip_nodes: 3,
            push_pull_interval_ms: 30_000,
            seeds: vec![0],
            lifeguard_lhm: true,
            lhm_max: 8,
            lifeguard_dynamic_suspicion: true,
            lifeguard_buddy: true,
            nack_percent: 80,
            nodes: Vec::new(),
        }
    }
}

impl SwimConfig {
    /// `Err((field, message))` naming the first bad field.
    pub fn validate(&self, nodes: usize) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        if self.probe_interval_ms == 0 {
            return bad("probe_interval_ms", "must be > 0".into());
        }
        if self.probe_timeout_ms == 0 || self.probe_timeout_ms >= self.probe_interval_ms {
            return bad(
                "probe_timeout_ms",
                format!(
                    "must be > 0 and < probe_interval_ms ({})",
                    self.probe_interval_ms
                ),
            );
        }
        if self.suspicion_mult == 0 {
            return bad("suspicion_mult", "must be > 0".into());
        }
        if self.suspicion_max_timeout_mult == 0 {
            return bad("suspicion_max_timeout_mult", "must be >= 1".into());
        }
        if self.retransmit_mult == 0 {
            return bad("retransmit_mult", "must be > 0".into());
        }
        if self.max_piggyback == 0 {
            return bad("max_piggyback", "must be > 0".into());
        }
        if self.gossip_interval_ms == 0 {
            return bad("gossip_interval_ms", "must be > 0".into());
        }
        if self.lhm_max > 64 {
            return bad("lhm_max", "must be <= 64".into());
        }
        if self.nack_percent == 0 || self.nack_percent >= 100 {
            return bad("nack_percent", "must be in 1..=99".into());
        }
        if self.seeds.is_empty() {
            return bad("seeds", "needs at least one seed member".into());
        }
        if let Some(&s) = self.seeds.iter().find(|&&s| s >= nodes) {
            return bad("seeds", format!("node {s} outside a cluster of {nodes}"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for spec in &self.nodes {
            if spec.id >= nodes {
                return bad(
                    "nodes",
                    format!("node {} outside a cluster of {nodes}", spec.id),
                );
            }
            if !seen.insert(spec.id) {
                return bad("nodes", format!("node {} listed twice", spec.id));
            }
            if let (Some(j), Some(l)) = (spec.join_at_ms, spec.leave_at_ms) {
                if l <= j {
                    return bad(
                        "nodes",
                        format!("node {}: leave_at_ms {l} not after join_at_ms {j}", spec.id),
                    );
                }
            }
        }
        Ok(())
    }

    /// The per-node settings for `id`, if the table has any.
    pub fn node_spec(&self, id: NodeId) -> Option<&NodeSpec> {
        self.nodes.iter().find(|s| s.id == id)
    }

    /// `probe_interval_ms`.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }

    /// `probe_timeout_ms`.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }

    /// `gossip_interval_ms`.
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }

    /// The largest Local Health Multiplier factor (LHM + 1) a member can reach.
    pub fn max_probe_scale(&self) -> u32 {
        if self.lifeguard_lhm {
            self.lhm_max + 1
        } else {
            1
        }
    }

    /// λ · ⌈log10(n + 1)⌉ (memberlist `retransmitLimit`).
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let log = ceil_log10(n as u64 + 1);
        (self.retransmit_mult * log.max(1)) as u32
    }

    /// Min = α · max(1, log10 n) · probe interval (memberlist `suspicionTimeout`).
    pub fn suspicion_min(&self, n: usize) -> Duration {
        // `libm` (pure Rust), not `f64::log10`, so that every platform agrees.
        let scale = libm::log10(n.max(1) as f64).max(1.0);
        let ms = (self.suspicion_mult as f64) * scale * (self.probe_interval_ms as f64);
        Duration::from_millis(ms.floor() as u64)
    }

    /// Max = β · Min with dynamic suspicion; Min otherwise (SWIM's fixed timeout).
    pub fn suspicion_max(&self, n: usize) -> Duration {
        if self.lifeguard_dynamic_suspicion {
            self.suspicion_min(n) * self.suspicion_max_timeout_mult as u32
        } else {
            self.suspicion_min(n)
        }
    }

    /// K for the dynamic timeout: forced to 0 when fewer than K members could confirm.
    pub fn suspicion_k(&self, n: usize) -> u64 {
        let k = self
            .suspicion_confirmations
            .unwrap_or(self.suspicion_mult.saturating_sub(2));
        if (n as u64).saturating_sub(2) < k {
            0
        } else {
            k
        }
    }

    /// memberlist's push/pull scaling: unchanged up to 32 members, then
    /// × (⌈log2 n − log2 32⌉ + 1).
    pub fn push_pull_interval(&self, n: usize) -> Duration {
        let base = Duration::from_millis(self.push_pull_interval_ms);
        if n <= 32 {
            return base;
        }
        // ⌈log2 n − 5⌉ = ⌈log2 n⌉ − 5, in integers.
        let mult = ceil_log2(n as u64) - 5 + 1;
        base * mult
    }

    /// Longest a probe period can last (LHM at saturation).
    pub fn probe_period_max(&self) -> Duration {
        self.probe_interval() * self.max_probe_scale()
    }

    /// Time for an update to reach every live member: the infection-style spread
    /// (each update is sent `retransmit_limit` times, one gossip round apart at worst,
    /// plus a probe period for piggybacking) or, if rumours die out, one push-pull
    /// round as the backstop.
    pub fn dissemination_bound(&self, n: usize) -> Duration {
        let gossip = self.gossip_interval() * self.retransmit_limit(n) + self.probe_period_max();
        if self.push_pull_interval_ms == 0 {
            gossip
        } else {
            gossip.max(self.push_pull_interval(n)) + self.probe_period_max()
        }
    }

    /// Bound on first suspicion of a crashed member by some live member: with
    /// round-robin, a healthy member (LHM 0) probes each other at least once per
    /// (2n − 1) periods (SWIM §4.3), then needs one more period to conclude; with
    /// random order only the expectation (≈ 1.58 periods) is bounded, so the same
    /// figure is used as a horizon.
    pub fn first_suspicion_bound(&self, n: usize) -> Duration {
        let periods = (2 * n.max(1)) as u32;
        self.probe_interval() * periods
    }

    /// Crash → dead at every live member: first suspicion + Max suspicion timeout +
    /// dissemination of the dead update.
    pub fn detection_bound(&self, n: usize) -> Duration {
        self.first_suspicion_bound(n) + self.suspicion_max(n) + self.dissemination_bound(n)
    }

    /// After faults heal: members split by a partition find each other at the next
    /// push-pull (which also reconnects to members held dead), refute, and spread
    /// the refutation; crashed members are detected within the detection bound.
    pub fn convergence_bound(&self, n: usize) -> Duration {
        let reconnect = if self.push_pull_interval_ms == 0 {
            Duration::ZERO
        } else {
            self.push_pull_interval(n) * 2
        };
        reconnect + self.detection_bound(n)
    }
}

/// ⌈log10 x⌉ for x ≥ 1, exactly: the least d with 10^d ≥ x.
fn ceil_log10(x: u64) -> u64 {
    let mut d = 0;
    let mut p = 1u64;
    // At most 20 rounds: 10^20 exceeds u64::MAX, and `p` saturates there.
    while p < x {
        p = p.saturating_mul(10);
        d += 1;
    }
    d
}

/// ⌈log2 x⌉ for x ≥ 1, exactly.
fn ceil_log2(x: u64) -> u32 {
    match x {
        0 | 1 => 0,
        _ => u64::BITS - (x - 1).leading_zeros(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer forms agree with the float formulas they replaced (memberlist's),
    /// over every cluster size a scenario can plausibly ask for.
    #[test]
    fn integer_logarithms_match_the_float_formulas() {
        for n in 0..100_000u64 {
            let x = n as f64;
            assert_eq!(
                ceil_log10(n + 1),
                (x + 1.0).log10().ceil() as u64,
                "n = {n}"
            );
            if n > 32 {
                assert_eq!(ceil_log2(n), x.log2().ceil() as u32, "n = {n}");
                assert_eq!(
                    ceil_log2(n) - 5 + 1,
                    (x.log2() - 32f64.log2()).ceil() as u32 + 1
                );
            }
        }
        assert_eq!(ceil_log10(u64::MAX), 20);
        assert_eq!(ceil_log2(u64::MAX), 64);
    }
}

//! Faults: explicit timed entries in a scenario, and what a seed expands into.
//! Times are true simulated times in milliseconds from the start of the run. A fault
//! without an end lasts until the final heal.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::process::NodeId;

/// A latency distribution, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Latency {
    Constant {
        ms: f64,
    },
    Uniform {
        min_ms: f64,
        max_ms: f64,
    },
    /// `min_ms` plus an exponential tail with the given mean (a long-tailed network).
    Exponential {
        min_ms: f64,
        mean_ms: f64,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Uniform {
            min_ms: 1.0,
            max_ms: 10.0,
        }
    }
}

impl Latency {
    pub fn sample_ns(&self, rng: &mut impl Rng) -> u64 {
        let ms = match *self {
            Latency::Constant { ms } => ms,
            Latency::Uniform { min_ms, max_ms } if max_ms > min_ms => rng.gen_range(min_ms..max_ms),
            Latency::Uniform { min_ms, .. } => min_ms,
            Latency::Exponential { min_ms, mean_ms } => {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                // `libm`, not `f64::ln`: the platform's libm may round differently,
                // and one nanosecond changes the run.
                min_ms - libm::log(u) * (mean_ms - min_ms)
            }
        };
        (ms * 1e6) as u64
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let ok = match *self {
            Latency::Constant { ms } => ms >= 0.0,
            Latency::Uniform { min_ms, max_ms } => min_ms >= 0.0 && max_ms >= min_ms,
            Latency::Exponential { min_ms, mean_ms } => min_ms >= 0.0 && mean_ms >= min_ms,
        };
        match ok && self.finite() {
            true => Ok(()),
            false => Err(format!(
                "{self:?} is not a valid latency (non-negative, min <= max)"
            )),
        }
    }

    fn finite(&self) -> bool {
        match *self {
            Latency::Constant { ms } => ms.is_finite() && ms < 1e9,
            Latency::Uniform { min_ms, max_ms } => {
                max_ms.is_finite() && min_ms < 1e9 && max_ms < 1e9
            }
            Latency::Exponential { min_ms, mean_ms } => {
                mean_ms.is_finite() && min_ms < 1e9 && mean_ms < 1e9
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Symmetric partition: nodes talk only within their group. Nodes listed in no
    /// group form one more group together.
    Partition {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        groups: Vec<Vec<NodeId>>,
    },
    /// Messages from any node in `from` to any node in `to` are lost; the other
    /// direction still works.
    OneWay {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        from: Vec<NodeId>,
        to: Vec<NodeId>,
    },
    /// `left` and `right` cannot talk to each other; `bridge` talks to both.
    Bridge {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        bridge: NodeId,
        left: Vec<NodeId>,
        right: Vec<NodeId>,
    },
    /// One node cut off from every other node.
    Isolate {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        node: NodeId,
    },
    /// Kill the process: volatile state and unsynced writes are lost (with `torn`, a
    /// random prefix of the unsynced writes survives). It restarts at `restart_ms`.
    Crash {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart_ms: Option<u64>,
        node: NodeId,
        #[serde(default)]
        torn: bool,
    },
    /// Freeze the process: no timers, no message handling; its clock keeps going and
    /// messages to it are buffered.
    Pause {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_ms: Option<u64>,
        node: NodeId,
    },
    /// From `at_ms` on, the node's clock reads `offset_ms` away from true time and
    /// drifts at `drift_ppm`. Clock faults are not healed.
    Clock {
        at_ms: u64,
        node: NodeId,
        #[serde(default)]
        offset_ms: i64,
        #[serde(default)]
        drift_ppm: f64,
    },
    /// Extra delay on every message to or from `nodes` (all links if empty).
    LatencySpike {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        #[serde(default)]
        nodes: Vec<NodeId>,
        delay: Latency,
    },
    /// Raises the loss rate on every link to `rate`.
    Loss {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        rate: f64,
    },
    /// Raises the duplication rate on every link to `rate`.
    Duplicate {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        rate: f64,
    },
}

impl Fault {
    pub fn at_ms(&self) -> u64 {
        match *self {
            Fault::Partition { at_ms, .. }
            | Fault::OneWay { at_ms, .. }
            | Fault::Bridge { at_ms, .. }
            | Fault::Isolate { at_ms, .. }
            | Fault::Crash { at_ms, .. }
            | Fault::Pause { at_ms, .. }
            | Fault::Clock { at_ms, .. }
            | Fault::LatencySpike { at_ms, .. }
            | Fault::Loss { at_ms, .. }
            | Fault::Duplicate { at_ms, .. } => at_ms,
        }
    }

    /// When the fault ends (`None`: at the final heal); clock faults never end.
    pub fn end_ms(&self) -> Option<u64> {
        match *self {
            Fault::Partition { heal_ms, .. }
            | Fault::OneWay { heal_ms, .. }
            | Fault::Bridge { heal_ms, .. }
            | Fault::Isolate { heal_ms, .. }
            | Fault::LatencySpike { heal_ms, .. }
            | Fault::Loss { heal_ms, .. }
            | Fault::Duplicate { heal_ms, .. } => heal_ms,
            Fault::Crash { restart_ms, .. } => restart_ms,
            Fault::Pause { resume_ms, .. } => resume_ms,
            Fault::Clock { .. } => None,
        }
    }

    /// The name of the field holding [`Fault::end_ms`], for error messages.
    pub fn end_field(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "restart_ms",
            Fault::Pause { .. } => "resume_ms",
            _ => "heal_ms",
        }
    }

    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::OneWay { .. } => FaultKind::OneWay,
            Fault::Bridge { .. } => FaultKind::Bridge,
            Fault::Isolate { .. } => FaultKind::Isolate,
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::Clock { .. } => FaultKind::Clock,
            Fault::LatencySpike { .. } => FaultKind::LatencySpike,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::Duplicate { .. } => FaultKind::Duplicate,
        }
    }

    /// The node this fault takes down (crash or pause), if any.
    pub fn downed_node(&self) -> Option<NodeId> {
        match *self {
            Fault::Crash { node, .. } | Fault::Pause { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Every node id the fault names, with the field it came from.
    pub fn node_ids(&self) -> Vec<(&'static str, NodeId)> {
        let each =
            |field, ids: &Vec<NodeId>| ids.iter().map(move |&n| (field, n)).collect::<Vec<_>>();
        match self {
            Fault::Partition { groups, .. } => {
                groups.iter().flat_map(|g| each("groups", g)).collect()
            }
            Fault::OneWay { from, to, .. } => [each("from", from), each("to", to)].concat(),
            Fault::Bridge {
                bridge,
                left,
                right,
                ..
            } => [
                vec![("bridge", *bridge)],
                each("left", left),
                each("right", right),
            ]
            .concat(),
            Fault::LatencySpike { nodes, .. } => each("nodes", nodes),
            Fault::Isolate { node, .. }
            | Fault::Crash { node, .. }
            | Fault::Pause { node, .. }
            | Fault::Clock { node, .. } => vec![("node", *node)],
            Fault::Loss { .. } | Fault::Duplicate { .. } => Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Partition,
    OneWay,
    Bridge,
    Isolate,
    Crash,
    Pause,
    Clock,
    LatencySpike,
    Loss,
    Duplicate,
}

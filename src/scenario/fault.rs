//! Faults: explicit timed entries in a scenario, and what a seed expands into.
//! Times are true simulated times in milliseconds from the start of the run. A fault
//! without an end lasts until the final heal; one marked `permanent = true` lasts
//! through the liveness phase too (a crash then never restarts).

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
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        groups: Vec<Vec<NodeId>>,
    },
    /// Messages from any node in `from` to any node in `to` are lost; the other
    /// direction still works.
    OneWay {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        from: Vec<NodeId>,
        to: Vec<NodeId>,
    },
    /// `left` and `right` cannot talk to each other; `bridge` talks to both.
    Bridge {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        bridge: NodeId,
        left: Vec<NodeId>,
        right: Vec<NodeId>,
    },
    /// One node cut off from every other node.
    Isolate {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        node: NodeId,
    },
    /// Kill the process: volatile state and unsynced writes are lost (with `torn`, a
    /// random prefix of the unsynced writes survives). It restarts at `restart_ms`, or at
    /// the final heal; with `permanent = true` it never does.
    Crash {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
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
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        node: NodeId,
    },
    /// An NTP-like step: from `at_ms` on, the node's wall clock reads `offset_ms` more
    /// (or less) than before. The monotonic clock, and so every timer, is untouched.
    /// Not healed.
    ClockStep {
        at_ms: u64,
        node: NodeId,
        offset_ms: i64,
    },
    /// From `at_ms` on, the node's clocks run `drift_ppm` parts per million fast (or
    /// slow), without moving: timers speed up or slow down with them. Not healed.
    ClockDrift {
        at_ms: u64,
        node: NodeId,
        drift_ppm: f64,
    },
    /// Both clocks of the node stop from `at_ms` until `heal_ms`, while it keeps
    /// handling messages (a stalled clock source, or a VM frozen by its hypervisor);
    /// at the heal they catch up, and timers that fell due meanwhile fire late.
    ClockFreeze {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        node: NodeId,
    },
    /// The node's disk completes no sync until the heal; writes are still accepted,
    /// and the network and timers are unaffected.
    DiskStall {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        node: NodeId,
    },
    /// Syncs the node starts take `factor` times their usual latency.
    DiskSlow {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        node: NodeId,
        factor: f64,
    },
    /// The next sync the node's disk completes after `at_ms` fails (EIO), and the
    /// writes it covered are dropped from the page cache, as Linux does.
    FsyncError { at_ms: u64, node: NodeId },
    /// A crash after which the node comes back at `restart_ms` with an empty disk,
    /// under the same id: a replaced machine.
    DiskWipe {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        node: NodeId,
    },
    /// Extra delay on every message to or from `nodes` (all links if empty).
    LatencySpike {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        #[serde(default)]
        nodes: Vec<NodeId>,
        delay: Latency,
    },
    /// Raises the loss rate on every link to `rate`.
    Loss {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        rate: f64,
    },
    /// Raises the duplication rate on every link to `rate`.
    Duplicate {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
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
            | Fault::ClockStep { at_ms, .. }
            | Fault::ClockDrift { at_ms, .. }
            | Fault::ClockFreeze { at_ms, .. }
            | Fault::DiskStall { at_ms, .. }
            | Fault::DiskSlow { at_ms, .. }
            | Fault::FsyncError { at_ms, .. }
            | Fault::DiskWipe { at_ms, .. }
            | Fault::LatencySpike { at_ms, .. }
            | Fault::Loss { at_ms, .. }
            | Fault::Duplicate { at_ms, .. } => at_ms,
        }
    }

    /// When the fault ends (`None`: at the final heal, or never for a fault that is
    /// not healed: see [`Fault::heals`]).
    pub fn end_ms(&self) -> Option<u64> {
        match *self {
            Fault::Partition { heal_ms, .. }
            | Fault::OneWay { heal_ms, .. }
            | Fault::Bridge { heal_ms, .. }
            | Fault::Isolate { heal_ms, .. }
            | Fault::LatencySpike { heal_ms, .. }
            | Fault::Loss { heal_ms, .. }
            | Fault::Duplicate { heal_ms, .. }
            | Fault::ClockFreeze { heal_ms, .. }
            | Fault::DiskStall { heal_ms, .. }
            | Fault::DiskSlow { heal_ms, .. } => heal_ms,
            Fault::Crash { restart_ms, .. } | Fault::DiskWipe { restart_ms, .. } => restart_ms,
            Fault::Pause { resume_ms, .. } => resume_ms,
            Fault::ClockStep { .. } | Fault::ClockDrift { .. } | Fault::FsyncError { .. } => None,
        }
    }

    /// Whether the fault is never healed: `permanent = true`, which takes no end time.
    pub fn permanent(&self) -> bool {
        match *self {
            Fault::Partition { permanent, .. }
            | Fault::OneWay { permanent, .. }
            | Fault::Bridge { permanent, .. }
            | Fault::Isolate { permanent, .. }
            | Fault::Crash { permanent, .. }
            | Fault::Pause { permanent, .. }
            | Fault::ClockFreeze { permanent, .. }
            | Fault::DiskStall { permanent, .. }
            | Fault::DiskSlow { permanent, .. }
            | Fault::DiskWipe { permanent, .. }
            | Fault::LatencySpike { permanent, .. }
            | Fault::Loss { permanent, .. }
            | Fault::Duplicate { permanent, .. } => permanent,
            Fault::ClockStep { .. } | Fault::ClockDrift { .. } | Fault::FsyncError { .. } => false,
        }
    }

    /// Whether the fault ends (at its end time, or at the final heal). A clock step or
    /// drift and an fsync error are events, not states: nothing heals them.
    pub fn heals(&self) -> bool {
        !matches!(
            self,
            Fault::ClockStep { .. } | Fault::ClockDrift { .. } | Fault::FsyncError { .. }
        )
    }

    /// The name of the field holding [`Fault::end_ms`], for error messages.
    pub fn end_field(&self) -> &'static str {
        match self {
            Fault::Crash { .. } | Fault::DiskWipe { .. } => "restart_ms",
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
            Fault::ClockStep { .. } => FaultKind::ClockStep,
            Fault::ClockDrift { .. } => FaultKind::ClockDrift,
            Fault::ClockFreeze { .. } => FaultKind::ClockFreeze,
            Fault::DiskStall { .. } => FaultKind::DiskStall,
            Fault::DiskSlow { .. } => FaultKind::DiskSlow,
            Fault::FsyncError { .. } => FaultKind::FsyncError,
            Fault::DiskWipe { .. } => FaultKind::DiskWipe,
            Fault::LatencySpike { .. } => FaultKind::LatencySpike,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::Duplicate { .. } => FaultKind::Duplicate,
        }
    }

    /// The node this fault takes down (crash, disk wipe or pause), if any.
    pub fn downed_node(&self) -> Option<NodeId> {
        match *self {
            Fault::Crash { node, .. }
            | Fault::DiskWipe { node, .. }
            | Fault::Pause { node, .. } => Some(node),
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
            | Fault::ClockStep { node, .. }
            | Fault::ClockDrift { node, .. }
            | Fault::ClockFreeze { node, .. }
            | Fault::DiskStall { node, .. }
            | Fault::DiskSlow { node, .. }
            | Fault::FsyncError { node, .. }
            | Fault::DiskWipe { node, .. } => vec![("node", *node)],
            Fault::Loss { .. } | Fault::Duplicate { .. } => Vec::new(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !b
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
    ClockStep,
    ClockDrift,
    ClockFreeze,
    DiskStall,
    DiskSlow,
    FsyncError,
    DiskWipe,
    LatencySpike,
    Loss,
    Duplicate,
}

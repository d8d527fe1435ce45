//! Faults: explicit timed entries in a scenario, and what a seed expands into.
//! Times are true simulated times in milliseconds from the start of the run. A fault
//! without an end lasts until the final heal; one marked `permanent = true` lasts
//! through the liveness phase too (a crash then never restarts).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::process::{ClientId, NodeId};

/// A latency distribution, in milliseconds, written `{ dist = "uniform", min_ms = 1,
/// max_ms = 10 }` (the default). Each value must be finite, non-negative and below
/// 10^9 ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Latency {
    /// Always `ms`.
    Constant {
        /// The latency, in ms.
        ms: f64,
    },
    /// Uniform over `[min_ms, max_ms)`; always `min_ms` when `max_ms <= min_ms`.
    Uniform {
        /// Lower bound, in ms (inclusive).
        min_ms: f64,
        /// Upper bound, in ms (exclusive); at least `min_ms`.
        max_ms: f64,
    },
    /// `min_ms` plus an exponential tail with the given mean (a long-tailed network).
    Exponential {
        /// The floor, in ms: no draw is below it.
        min_ms: f64,
        /// Mean of the whole distribution, in ms (the tail's mean is
        /// `mean_ms - min_ms`); at least `min_ms`.
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
    /// One draw from `rng`, in nanoseconds (truncated). The exponential tail uses
    /// `libm::log`, so a seed draws the same value on every platform.
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

/// One timed fault, as a scenario's `[[faults]]` entry or a schedule's `faults` lists
/// it (`kind = "partition"`, `at_ms = 1000`, ...). Times are true simulated times in
/// ms from the start of the run: `at_ms` falls before the scenario's `duration_ms`,
/// and an end field (`heal_ms`, `restart_ms` or `resume_ms`) after `at_ms`; unset, it
/// means the final heal (never, with `permanent = true`). Node ids are `0..nodes` and
/// client ids `0..clients`; a scenario naming others is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Symmetric partition: nodes talk only within their group. Nodes listed in no
    /// group form one more group together.
    Partition {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The groups, each a non-empty list of node ids; no node is in two.
        groups: Vec<Vec<NodeId>>,
        /// Message classes it applies to (see `Process::message_class`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        classes: Vec<String>,
    },
    /// Messages from any node in `from` to any node in `to` are lost; the other
    /// direction still works.
    OneWay {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// Senders whose messages are lost (non-empty).
        from: Vec<NodeId>,
        /// Receivers they are lost to (non-empty, none of `from`).
        to: Vec<NodeId>,
        /// Message classes it applies to (see `Process::message_class`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        classes: Vec<String>,
    },
    /// `left` and `right` cannot talk to each other; `bridge` talks to both (the shape
    /// of Jepsen's `bridge` grudge, `jepsen.nemesis/bridge`). Nodes in none of the three
    /// keep every link.
    Bridge {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node that still talks to both sides (on neither side).
        bridge: NodeId,
        /// One side (non-empty).
        left: Vec<NodeId>,
        /// The other side (non-empty, none of `left`).
        right: Vec<NodeId>,
        /// Message classes it applies to (see `Process::message_class`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        classes: Vec<String>,
    },
    /// One node cut off from every other node.
    Isolate {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node cut off.
        node: NodeId,
        /// Message classes it applies to (see `Process::message_class`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        classes: Vec<String>,
    },
    /// Kill the process: volatile state and unsynced writes are lost (with `torn`, a
    /// random prefix of the unsynced writes survives). It restarts at `restart_ms`, or at
    /// the final heal; with `permanent = true` it never does.
    Crash {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When the node restarts, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node killed.
        node: NodeId,
        /// Keep a prefix of the unsynced writes, of a length drawn uniformly from
        /// 0 to all of them (from the crash stream), instead of losing them all.
        #[serde(default)]
        torn: bool,
    },
    /// Freeze the process: no timers, no message handling; its clock keeps going and
    /// messages to it are buffered.
    Pause {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When the node resumes, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node frozen.
        node: NodeId,
    },
    /// An NTP-like step: from `at_ms` on, the node's wall clock reads `offset_ms` more
    /// (or less) than before. The monotonic clock, and so every timer, is untouched.
    /// Not healed.
    ClockStep {
        /// When the step happens, in ms from the start of the run.
        at_ms: u64,
        /// The node it strikes.
        node: NodeId,
        /// How far the wall clock moves, in ms: positive forward, negative back
        /// (at most a day either way).
        offset_ms: i64,
    },
    /// From `at_ms` on, the node's clocks run `drift_ppm` parts per million fast (or
    /// slow), without moving: timers speed up or slow down with them. Not healed.
    ClockDrift {
        /// When the drift changes, in ms from the start of the run.
        at_ms: u64,
        /// The node it strikes.
        node: NodeId,
        /// The new drift rate, in parts per million: positive fast, negative slow
        /// (within ±[`DRIFT_PPM_MAX`](crate::scenario::DRIFT_PPM_MAX)).
        drift_ppm: f64,
    },
    /// Both clocks of the node stop from `at_ms` until `heal_ms`, while it keeps
    /// handling messages (a stalled clock source, or a VM frozen by its hypervisor);
    /// at the heal they catch up, and timers that fell due meanwhile fire late.
    ClockFreeze {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node whose clocks stop.
        node: NodeId,
    },
    /// The node's disk completes no sync until the heal; writes are still accepted,
    /// and the network and timers are unaffected.
    DiskStall {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node whose disk stalls.
        node: NodeId,
    },
    /// Syncs the node starts take `factor` times their usual latency.
    DiskSlow {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node whose disk is slow.
        node: NodeId,
        /// The latency multiplier, from 1 to 1,000,000.
        factor: f64,
    },
    /// The next sync the node's disk completes after `at_ms` fails (EIO), and the
    /// writes it covered are dropped from the page cache, as Linux does.
    FsyncError {
        /// When it is armed, in ms from the start of the run: the first sync to complete
        /// from then on fails.
        at_ms: u64,
        /// The node whose sync fails.
        node: NodeId,
    },
    /// A crash after which the node comes back at `restart_ms` with an empty disk,
    /// under the same id: a replaced machine.
    DiskWipe {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When the node restarts, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node whose disk is wiped.
        node: NodeId,
    },
    /// Extra delay on every message to or from `nodes` and on the directed `links`
    /// (every link if both are empty).
    LatencySpike {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// Nodes whose messages, sent or received, it delays.
        #[serde(default)]
        nodes: Vec<NodeId>,
        /// Directed links it delays.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<Link>,
        /// The extra delay, drawn per message (added to the usual latency).
        delay: Latency,
    },
    /// Raises the loss rate to `rate` on every message to or from `nodes` and on the
    /// directed `links` (every link if both are empty), for the `classes` of messages
    /// named (all if empty).
    Loss {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// Loss probability, in [0, 1], while it lasts.
        rate: f64,
        /// Nodes whose messages, sent or received, it may drop.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<NodeId>,
        /// Directed links it may drop messages on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<Link>,
        /// Message classes it applies to (see `Process::message_class`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        classes: Vec<String>,
    },
    /// Raises the duplication rate to `rate` on every message to or from `nodes` and
    /// on the directed `links` (every link if both are empty).
    Duplicate {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// Duplication probability, in [0, 1], while it lasts.
        rate: f64,
        /// Nodes whose messages, sent or received, it may duplicate.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<NodeId>,
        /// Directed links it may duplicate messages on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<Link>,
    },
    /// Requests and replies between `clients` (every client if empty) and `nodes` are
    /// lost, both ways, as on a client-side network split: those clients reach only
    /// the other nodes.
    ClientPartition {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// The clients cut off (empty: every client).
        #[serde(default)]
        clients: Vec<ClientId>,
        /// The nodes they are cut from (non-empty).
        nodes: Vec<NodeId>,
    },
    /// The client stops (a GC pause, a suspended VM): no timer fires and no reply is
    /// handled until `resume_ms`; replies wait for it. Its operations in flight stay
    /// pending, and are judged as usual once it completes them.
    ClientPause {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When the client resumes, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_ms: Option<u64>,
        /// The client frozen.
        client: ClientId,
    },
    /// Client affinity (a sticky load balancer): every request the client sends goes
    /// to `node`, wherever the client meant it to go.
    ClientPin {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// The client pinned.
        client: ClientId,
        /// Where its requests go (of overlapping pins, the latest to start wins).
        node: NodeId,
    },
    /// Messages from any node in `from` to any node in `to` that arrive during the
    /// window are held, not lost, and delivered at the heal in the order they were
    /// sent (or in an order drawn from the network stream, with `shuffle`).
    Hold {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// Senders whose messages are held (non-empty).
        from: Vec<NodeId>,
        /// Receivers they are held from (non-empty, none of `from`).
        to: Vec<NodeId>,
        /// Release in an order drawn from the network stream, not in send order.
        #[serde(default)]
        shuffle: bool,
        /// Message classes it applies to (see `Process::message_class`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        classes: Vec<String>,
    },
    /// CPU starvation: every handler of the node (message, timer, disk completion,
    /// client request) runs late by a delay drawn per call, in arrival order, while
    /// its clock keeps true time. An input due at `t` starts at
    /// `max(t + delay, start of the previous one)`; with `busy`, the delay is CPU time
    /// each handler takes instead, so inputs queue behind each other:
    /// `max(t, start of the previous one) + delay`. With `timers = false`, timers
    /// fire on time and only inputs wait (a process whose receive path is starved
    /// while its timer thread runs: it times out on replies that already arrived).
    Slow {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node starved.
        node: NodeId,
        /// How late each handler runs, drawn per call (several slow faults add up).
        delay: Latency,
        /// The delay is CPU time each handler takes, so inputs queue behind each other.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        busy: bool,
        /// Whether timers wait too (the default). While every active `slow` fault on the
        /// node says `false`, timers fire on time and only inputs wait.
        #[serde(default = "yes", skip_serializing_if = "is_yes")]
        timers: bool,
    },
    /// The application on `node` answers every call with an error while its
    /// process, its heartbeats and its registration go on (a service whose
    /// dependency failed): a discovery run's instance keeps its lease alive, so
    /// the registry goes on listing it. Only protocols whose nodes serve an
    /// application take it ([`crate::Process::serves_application`]); a node without
    /// one ignores it, and a restart clears it.
    ServiceUnhealthy {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node whose application fails.
        node: NodeId,
    },
    /// The application on `node` stops answering calls (a deadlock, an exhausted
    /// pool) while its process and its registration go on, as
    /// [`Fault::ServiceUnhealthy`] but silent: callers time out.
    ServiceHang {
        /// When it starts, in ms from the start of the run.
        at_ms: u64,
        /// When it ends, in ms; unset: at the final heal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heal_ms: Option<u64>,
        /// Never ends: not healed at the final heal either (see [`Fault::permanent`]).
        #[serde(default, skip_serializing_if = "is_false")]
        permanent: bool,
        /// The node whose application hangs.
        node: NodeId,
    },
    /// An operator adds `node` to the cluster (etcd's `member add`, Raft thesis §4.1):
    /// the protocol's membership request goes to the node the operator believes leads
    /// (see [`crate::System::member_request`]), retried until a final answer. An event:
    /// nothing heals it. Refused at load for a protocol without membership changes, and
    /// for a node already a voter (or, with `learner`, already a member) in the
    /// configuration the scenario's earlier member faults lead to.
    MemberAdd {
        /// When the operator starts, in ms from the start of the run.
        at_ms: u64,
        /// The node added.
        node: NodeId,
        /// Add it as a learner (a non-voting member), not as a voter; without it, a
        /// learner is promoted.
        #[serde(default, skip_serializing_if = "is_false")]
        learner: bool,
        /// The operator's command timeout, in ms (etcdctl's `--command-timeout`): with
        /// no final answer this long after the operator took the change up, it gives
        /// the change up and moves on, while the change may still commit. Unset: it
        /// keeps asking (up to its attempts bound).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// An operator removes `node` from the cluster (etcd's `member remove`). Refused at
    /// load when `node` is not a member, or is the last voter.
    MemberRemove {
        /// When the operator starts, in ms from the start of the run.
        at_ms: u64,
        /// The node removed.
        node: NodeId,
        /// The operator's command timeout, in ms (see [`Fault::MemberAdd`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// An operator replaces a failed member's machine: removes `node`; only once that
    /// removal is committed, crashes it, wipes its disk, restarts it (seeded with what
    /// [`crate::System::rejoin_records`] gives: etcd's `--initial-cluster-state
    /// existing`) and adds it back as a learner, then, if it was a voter, promotes it a
    /// second later (etcd's `member add --learner`, then `member promote`). A node
    /// still a member is never wiped. Refused at load when `node` is not a member, or is the last voter.
    MemberReplace {
        /// When the operator starts, in ms from the start of the run.
        at_ms: u64,
        /// The node replaced.
        node: NodeId,
    },
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// A directed link, `from` → `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
}

/// Which messages a scoped network fault (`loss`, `duplicate`, `latency-spike`)
/// touches: those to or from `nodes` and those on `links`; every message if both are
/// empty.
pub fn in_scope(nodes: &[NodeId], links: &[Link], from: NodeId, to: NodeId) -> bool {
    (nodes.is_empty() && links.is_empty())
        || nodes.contains(&from)
        || nodes.contains(&to)
        || links.contains(&Link { from, to })
}

/// The `at_ms` field of any fault, by reference (shared or mutable).
macro_rules! at_ms {
    ($fault:expr) => {
        match $fault {
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
            | Fault::Duplicate { at_ms, .. }
            | Fault::ClientPartition { at_ms, .. }
            | Fault::ClientPause { at_ms, .. }
            | Fault::ClientPin { at_ms, .. }
            | Fault::Hold { at_ms, .. }
            | Fault::Slow { at_ms, .. }
            | Fault::ServiceUnhealthy { at_ms, .. }
            | Fault::ServiceHang { at_ms, .. }
            | Fault::MemberAdd { at_ms, .. }
            | Fault::MemberRemove { at_ms, .. }
            | Fault::MemberReplace { at_ms, .. } => at_ms,
        }
    };
}

/// The end field of any fault (`heal_ms`, `restart_ms` or `resume_ms`), by reference;
/// `None` for the faults that are events, not states.
macro_rules! end_ms {
    ($fault:expr) => {
        match $fault {
            Fault::Partition { heal_ms: end, .. }
            | Fault::OneWay { heal_ms: end, .. }
            | Fault::Bridge { heal_ms: end, .. }
            | Fault::Isolate { heal_ms: end, .. }
            | Fault::LatencySpike { heal_ms: end, .. }
            | Fault::Loss { heal_ms: end, .. }
            | Fault::Duplicate { heal_ms: end, .. }
            | Fault::Hold { heal_ms: end, .. }
            | Fault::Slow { heal_ms: end, .. }
            | Fault::ServiceUnhealthy { heal_ms: end, .. }
            | Fault::ServiceHang { heal_ms: end, .. }
            | Fault::ClockFreeze { heal_ms: end, .. }
            | Fault::DiskStall { heal_ms: end, .. }
            | Fault::DiskSlow { heal_ms: end, .. }
            | Fault::ClientPartition { heal_ms: end, .. }
            | Fault::ClientPin { heal_ms: end, .. }
            | Fault::Crash {
                restart_ms: end, ..
            }
            | Fault::DiskWipe {
                restart_ms: end, ..
            }
            | Fault::Pause { resume_ms: end, .. }
            | Fault::ClientPause { resume_ms: end, .. } => Some(end),
            Fault::ClockStep { .. }
            | Fault::ClockDrift { .. }
            | Fault::FsyncError { .. }
            | Fault::MemberAdd { .. }
            | Fault::MemberRemove { .. }
            | Fault::MemberReplace { .. } => None,
        }
    };
}

/// The `node` field of a fault on one node, by reference (shared or mutable); `None`
/// for the faults that name several nodes, or none.
macro_rules! node {
    ($fault:expr) => {
        match $fault {
            Fault::Isolate { node, .. }
            | Fault::Crash { node, .. }
            | Fault::Pause { node, .. }
            | Fault::ClockStep { node, .. }
            | Fault::ClockDrift { node, .. }
            | Fault::ClockFreeze { node, .. }
            | Fault::DiskStall { node, .. }
            | Fault::DiskSlow { node, .. }
            | Fault::FsyncError { node, .. }
            | Fault::DiskWipe { node, .. }
            | Fault::Slow { node, .. }
            | Fault::ServiceUnhealthy { node, .. }
            | Fault::ServiceHang { node, .. }
            | Fault::ClientPin { node, .. }
            | Fault::MemberAdd { node, .. }
            | Fault::MemberRemove { node, .. }
            | Fault::MemberReplace { node, .. } => Some(node),
            _ => None,
        }
    };
}

impl Fault {
    /// The `node` field of a fault on one node, to change it (a targeted fault's
    /// node when it strikes); `None` for the others.
    pub(crate) fn node_mut(&mut self) -> Option<&mut NodeId> {
        node!(self)
    }

    /// When the fault starts, in ms from the start of the run.
    pub fn at_ms(&self) -> u64 {
        *at_ms!(self)
    }

    /// [`Fault::at_ms`], to move the start (a shrinker's later start).
    pub fn at_ms_mut(&mut self) -> &mut u64 {
        at_ms!(self)
    }

    /// When the fault ends (`None`: at the final heal, or never for a fault that is
    /// not healed: see [`Fault::heals`]).
    pub fn end_ms(&self) -> Option<u64> {
        end_ms!(self).and_then(|end| *end)
    }

    /// The fault's end field (`heal_ms`, `restart_ms` or `resume_ms`: see
    /// [`Fault::end_field`]), to move the end; `None` for a fault that has none.
    pub fn end_ms_mut(&mut self) -> Option<&mut Option<u64>> {
        end_ms!(self)
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
            | Fault::Duplicate { permanent, .. }
            | Fault::Hold { permanent, .. }
            | Fault::Slow { permanent, .. }
            | Fault::ServiceUnhealthy { permanent, .. }
            | Fault::ServiceHang { permanent, .. } => permanent,
            // Events, not states; and client faults always end at the final heal: the
            // liveness phase waits for every client to finish its operations.
            Fault::ClockStep { .. }
            | Fault::ClockDrift { .. }
            | Fault::FsyncError { .. }
            | Fault::ClientPartition { .. }
            | Fault::ClientPause { .. }
            | Fault::ClientPin { .. }
            | Fault::MemberAdd { .. }
            | Fault::MemberRemove { .. }
            | Fault::MemberReplace { .. } => false,
        }
    }

    /// Whether the fault ends (at its end time, or at the final heal). A clock step or
    /// drift, an fsync error and a membership change are events, not states: nothing
    /// heals them.
    pub fn heals(&self) -> bool {
        !matches!(
            self,
            Fault::ClockStep { .. }
                | Fault::ClockDrift { .. }
                | Fault::FsyncError { .. }
                | Fault::MemberAdd { .. }
                | Fault::MemberRemove { .. }
                | Fault::MemberReplace { .. }
        )
    }

    /// The name of the field holding [`Fault::end_ms`], for error messages.
    pub fn end_field(&self) -> &'static str {
        match self {
            Fault::Crash { .. } | Fault::DiskWipe { .. } => "restart_ms",
            Fault::Pause { .. } | Fault::ClientPause { .. } => "resume_ms",
            _ => "heal_ms",
        }
    }

    /// Which kind of fault it is (its `kind` field).
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
            Fault::ClientPartition { .. } => FaultKind::ClientPartition,
            Fault::ClientPause { .. } => FaultKind::ClientPause,
            Fault::ClientPin { .. } => FaultKind::ClientPin,
            Fault::Hold { .. } => FaultKind::Hold,
            Fault::Slow { .. } => FaultKind::Slow,
            Fault::ServiceUnhealthy { .. } => FaultKind::ServiceUnhealthy,
            Fault::ServiceHang { .. } => FaultKind::ServiceHang,
            Fault::MemberAdd { .. } => FaultKind::MemberAdd,
            Fault::MemberRemove { .. } => FaultKind::MemberRemove,
            Fault::MemberReplace { .. } => FaultKind::MemberReplace,
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
            Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => {
                [each("from", from), each("to", to)].concat()
            }
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
            Fault::LatencySpike { nodes, links, .. }
            | Fault::Loss { nodes, links, .. }
            | Fault::Duplicate { nodes, links, .. } => {
                let mut ids = each("nodes", nodes);
                for link in links {
                    ids.extend([("links", link.from), ("links", link.to)]);
                }
                ids
            }
            Fault::ClientPartition { nodes, .. } => each("nodes", nodes),
            _ => node!(self).map(|&n| vec![("node", n)]).unwrap_or_default(),
        }
    }

    /// Every client id the fault names, with the field it came from.
    pub fn client_ids(&self) -> Vec<(&'static str, ClientId)> {
        match self {
            Fault::ClientPartition { clients, .. } => {
                clients.iter().map(|&c| ("clients", c)).collect()
            }
            Fault::ClientPause { client, .. } | Fault::ClientPin { client, .. } => {
                vec![("client", *client)]
            }
            _ => Vec::new(),
        }
    }

    /// The message classes the fault is restricted to (empty: every class).
    pub fn classes(&self) -> &[String] {
        match self {
            Fault::Partition { classes, .. }
            | Fault::OneWay { classes, .. }
            | Fault::Bridge { classes, .. }
            | Fault::Isolate { classes, .. }
            | Fault::Loss { classes, .. }
            | Fault::Hold { classes, .. } => classes,
            _ => &[],
        }
    }

    /// The fault restricted to `classes` if it is a network cut (partition, one-way,
    /// bridge, isolation); any other fault as it is.
    pub fn with_classes(mut self, restricted: Vec<String>) -> Fault {
        if let Fault::Partition { classes, .. }
        | Fault::OneWay { classes, .. }
        | Fault::Bridge { classes, .. }
        | Fault::Isolate { classes, .. } = &mut self
        {
            *classes = restricted;
        }
        self
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// A fault's kind without its fields: what `kind` names in a fault and what
/// `random.kinds` lists. Its variants are [`Fault`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// [`Fault::Partition`] (`partition`).
    Partition,
    /// [`Fault::OneWay`] (`one-way`).
    OneWay,
    /// [`Fault::Bridge`] (`bridge`).
    Bridge,
    /// [`Fault::Isolate`] (`isolate`).
    Isolate,
    /// [`Fault::Crash`] (`crash`).
    Crash,
    /// [`Fault::Pause`] (`pause`).
    Pause,
    /// [`Fault::ClockStep`] (`clock-step`).
    ClockStep,
    /// [`Fault::ClockDrift`] (`clock-drift`).
    ClockDrift,
    /// [`Fault::ClockFreeze`] (`clock-freeze`).
    ClockFreeze,
    /// [`Fault::DiskStall`] (`disk-stall`).
    DiskStall,
    /// [`Fault::DiskSlow`] (`disk-slow`).
    DiskSlow,
    /// [`Fault::FsyncError`] (`fsync-error`).
    FsyncError,
    /// [`Fault::DiskWipe`] (`disk-wipe`).
    DiskWipe,
    /// [`Fault::LatencySpike`] (`latency-spike`).
    LatencySpike,
    /// [`Fault::Loss`] (`loss`).
    Loss,
    /// [`Fault::Duplicate`] (`duplicate`).
    Duplicate,
    /// [`Fault::Hold`] (`hold`).
    Hold,
    /// [`Fault::Slow`] (`slow`).
    Slow,
    /// [`Fault::ClientPartition`] (`client-partition`).
    ClientPartition,
    /// [`Fault::ClientPause`] (`client-pause`).
    ClientPause,
    /// [`Fault::ClientPin`] (`client-pin`).
    ClientPin,
    /// [`Fault::ServiceUnhealthy`] (`service-unhealthy`).
    ServiceUnhealthy,
    /// [`Fault::ServiceHang`] (`service-hang`).
    ServiceHang,
    /// [`Fault::MemberAdd`] (`member-add`).
    MemberAdd,
    /// [`Fault::MemberRemove`] (`member-remove`).
    MemberRemove,
    /// [`Fault::MemberReplace`] (`member-replace`).
    MemberReplace,
}

impl FaultKind {
    /// Every kind, in declaration (and `Ord`) order.
    pub const ALL: [FaultKind; 26] = [
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Bridge,
        FaultKind::Isolate,
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::ClockStep,
        FaultKind::ClockDrift,
        FaultKind::ClockFreeze,
        FaultKind::DiskStall,
        FaultKind::DiskSlow,
        FaultKind::FsyncError,
        FaultKind::DiskWipe,
        FaultKind::LatencySpike,
        FaultKind::Loss,
        FaultKind::Duplicate,
        FaultKind::Hold,
        FaultKind::Slow,
        FaultKind::ClientPartition,
        FaultKind::ClientPause,
        FaultKind::ClientPin,
        FaultKind::ServiceUnhealthy,
        FaultKind::ServiceHang,
        FaultKind::MemberAdd,
        FaultKind::MemberRemove,
        FaultKind::MemberReplace,
    ];

    /// The application kinds: they strike what a node serves, not the node, and
    /// only explicit faults name them (the generator does not draw them).
    pub const SERVICE: [FaultKind; 2] = [FaultKind::ServiceUnhealthy, FaultKind::ServiceHang];

    /// The membership kinds: an operator's requests, drawn only against a tracked
    /// configuration (see [`crate::System::bootstrap_members`]).
    pub const MEMBERSHIP: [FaultKind; 3] = [
        FaultKind::MemberAdd,
        FaultKind::MemberRemove,
        FaultKind::MemberReplace,
    ];

    /// Whether it is one of [`FaultKind::MEMBERSHIP`].
    pub fn is_membership(self) -> bool {
        FaultKind::MEMBERSHIP.contains(&self)
    }

    /// Whether it cuts links (`partition`, `one-way`, `bridge`, `isolate`): the kinds
    /// `[random] classes_rate` may restrict to some message classes.
    pub fn is_cut(self) -> bool {
        matches!(
            self,
            FaultKind::Partition | FaultKind::OneWay | FaultKind::Bridge | FaultKind::Isolate
        )
    }

    /// The name scenario files use in `kind`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::Isolate => "isolate",
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::ClockStep => "clock-step",
            FaultKind::ClockDrift => "clock-drift",
            FaultKind::ClockFreeze => "clock-freeze",
            FaultKind::DiskStall => "disk-stall",
            FaultKind::DiskSlow => "disk-slow",
            FaultKind::FsyncError => "fsync-error",
            FaultKind::DiskWipe => "disk-wipe",
            FaultKind::LatencySpike => "latency-spike",
            FaultKind::Loss => "loss",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Hold => "hold",
            FaultKind::Slow => "slow",
            FaultKind::ClientPartition => "client-partition",
            FaultKind::ClientPause => "client-pause",
            FaultKind::ClientPin => "client-pin",
            FaultKind::ServiceUnhealthy => "service-unhealthy",
            FaultKind::ServiceHang => "service-hang",
            FaultKind::MemberAdd => "member-add",
            FaultKind::MemberRemove => "member-remove",
            FaultKind::MemberReplace => "member-replace",
        }
    }

    /// What a fault of this kind did, as counted in the run's metrics
    /// (`fault_<kind>_<effect>`, summed over the faults of that kind; see
    /// `World::metrics`). Every kind also has `fault_<kind>_count`, the faults of it
    /// that started.
    pub fn effects(self) -> &'static [&'static str] {
        match self {
            FaultKind::Partition | FaultKind::OneWay | FaultKind::Bridge | FaultKind::Isolate => {
                &["messages_dropped"]
            }
            FaultKind::Loss => &["messages_dropped"],
            FaultKind::Duplicate => &["messages_duplicated"],
            FaultKind::LatencySpike => &["messages_delayed", "delay_ms"],
            FaultKind::Hold => &["messages_held", "messages_released"],
            FaultKind::Slow => &["handlers_delayed", "handler_delay_ms"],
            FaultKind::Crash => &["nodes_downed", "writes_lost", "writes_kept"],
            FaultKind::DiskWipe => &["nodes_downed", "writes_lost", "disks_wiped"],
            FaultKind::Pause => &["nodes_paused", "paused_ms"],
            FaultKind::ClockStep => &["offset_ms"],
            FaultKind::ClockDrift => &["timers_rescaled"],
            FaultKind::ClockFreeze => &["timers_held", "frozen_ms"],
            FaultKind::DiskStall => &["syncs_stalled"],
            FaultKind::DiskSlow => &["syncs_slowed"],
            FaultKind::FsyncError => &["syncs_failed", "writes_lost"],
            FaultKind::ClientPartition => &["messages_dropped"],
            FaultKind::ClientPause => &["clients_paused", "paused_ms"],
            FaultKind::ClientPin => &["requests_pinned"],
            FaultKind::ServiceUnhealthy | FaultKind::ServiceHang => &["services_struck"],
            FaultKind::MemberAdd | FaultKind::MemberRemove => {
                &["changes_committed", "changes_refused", "changes_abandoned"]
            }
            FaultKind::MemberReplace => &[
                "changes_committed",
                "changes_refused",
                "changes_abandoned",
                "disks_wiped",
            ],
        }
    }
}

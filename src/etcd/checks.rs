//! The checkers of an etcd run beyond Raft's: etcd's lease guarantee
//! ([`LeaseGuarantee`], rules in [`super::lease_check`]), the six watch guarantees
//! on every caller's stream ([`WatchGuarantees`], rules in
//! [`super::watch_check`]), and the discovery figures ([`DiscoveryFigures`],
//! computed by [`crate::discovery::metrics`]).
//!
//! Each reads what the nodes expose per step, at true time, and never the code it
//! judges: the lease checker sees acknowledgements and applied revocations, not the
//! lessor; the watch checker compares what callers received with the events the
//! members' stores committed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::caller::WatchRecord;
use super::lease_check::{self, LeaseHistory, Rule};
use super::node::EtcdNode;
use super::store::LeaseId;
use super::watch_check::{self, EventLog, Range, Segment, Stream};
use super::EventKind;
use crate::check::{Checker, ClusterView, Metrics};
use crate::discovery::recorder::Recorder;
use crate::process::NodeId;

/// How much faster than true time a member's clock may run over one TTL: 1%
/// (10,000 ppm, far beyond an NTP-disciplined clock). A lease revoked earlier than
/// its TTL minus this after an acknowledgement is a violation.
pub const LEASE_DRIFT_PERCENT: u32 = 1;

/// Most requests an instance has awaiting their first-attempt time.
const FIRST_SENT_MAX: usize = 4096;

/// etcd's lease guarantee: safety at every revocation, liveness once the run
/// settles (see [`super::lease_check`]).
pub struct LeaseGuarantee {
    history: LeaseHistory,
    /// (instance, request seq) → when its first attempt left.
    first_sent: BTreeMap<(NodeId, u64), Duration>,
    /// Every lease granted, with its TTL and owner.
    leases: BTreeMap<LeaseId, (Duration, NodeId)>,
    /// Leases revoked, and when (a revocation may precede the grant's answer).
    revoked: BTreeMap<LeaseId, Duration>,
    bound: Duration,
    /// The extension a new leader gives every lease (etcd's `Promote`).
    extension: Duration,
    /// The lessor's checkpoint interval (`None`: no checkpoints).
    checkpoint: Option<Duration>,
    /// Leaders' tenures in term order, from when each applied an entry of its term:
    /// (leader, from, until, stalled), `until`
    /// unset while it leads as far as seen; `stalled` is the leader's stall time
    /// (paused, its disk stuck) when the tenure began, then how much of the tenure
    /// it spent stalled, during which it committed nothing.
    tenures: Vec<(NodeId, Duration, Option<Duration>, Duration)>,
    term: u64,
    /// The election timeout: a leader cut off from its quorum may go on leading
    /// that long (CheckQuorum) without committing anything.
    election: Duration,
    /// Revocations by expiry whose owner was up.
    expired_owner_up: u64,
}

impl LeaseGuarantee {
    /// A checker allowing `bound` beyond a lease's TTL for its revocation, plus,
    /// for each leader change while it counts down, the `extension` a new leader
    /// gives and, with checkpoints every `checkpoint`, the part of the countdown
    /// since the last checkpoint, which the new leader cannot know: at most one
    /// interval after a tenure of at least one interval, else that tenure on top
    /// of the staleness before it. Without checkpoints a new leader gives the
    /// whole TTL back (etcd#9395), which this does not allow.
    pub fn new(bound: Duration, extension: Duration, checkpoint: Option<Duration>) -> Self {
        // etcd extends by the election timeout, which is also how long a leader cut
        // off from its quorum may go on leading (CheckQuorum).
        let election = extension;
        LeaseGuarantee {
            history: LeaseHistory::new(),
            first_sent: BTreeMap::new(),
            leases: BTreeMap::new(),
            revoked: BTreeMap::new(),
            bound,
            extension,
            checkpoint,
            tenures: Vec::new(),
            term: 0,
            election,
            expired_owner_up: 0,
        }
    }

    /// The liveness slack of a lease of `ttl` last acknowledged at `from` and
    /// revoked at `to`: how much later than `from + ttl` the leaders' countdowns
    /// may expire it (see [`LeaseGuarantee::new`]). Follows the countdown through
    /// each leader change: a new leader expires the lease its extension plus the
    /// remaining TTL of the last checkpoint that surely committed. One surely did
    /// in a tenure that lasted an interval beyond the election timeout (a leader
    /// cut off from its quorum commits nothing, for up to that long).
    fn slack(&self, ttl: Duration, from: Duration, to: Duration) -> Duration {
        let mut expiry = from + ttl;
        // The keepalive (or grant) reset the countdown at `from`.
        let mut remaining = ttl;
        let mut checkpointed = from;
        let mut prev: Option<(Duration, Duration)> = None;
        for &(_, start, until, stalled) in &self.tenures {
            let end = until.unwrap_or(to).saturating_sub(stalled);
            if start <= from {
                prev = Some((from, end));
                continue;
            }
            if start > to {
                break;
            }
            match self.checkpoint {
                Some(interval) => {
                    if let Some((w0, w1)) = prev {
                        let sure = w1.saturating_sub(self.election + interval);
                        if sure > w0 && sure > checkpointed {
                            checkpointed = sure;
                            remaining = expiry.saturating_sub(sure);
                        }
                    }
                    expiry = start + self.extension + remaining;
                }
                None => expiry += self.extension,
            }
            prev = Some((start, end));
        }
        self.bound + expiry.saturating_sub(from + ttl)
    }

    /// The current tenure, if open, ends at `now`.
    fn end_tenure(&mut self, view: &ClusterView<'_, EtcdNode>, now: Duration) {
        if let Some((leader, _, until @ None, stalled)) = self.tenures.last_mut() {
            *until = Some(now);
            *stalled = view.stalled(*leader).saturating_sub(*stalled);
        }
    }

    fn drift(ttl: Duration) -> Duration {
        ttl * LEASE_DRIFT_PERCENT / 100
    }

    fn violations(&self, now: Duration, rule: Rule) -> Option<String> {
        // The drift allowance depends on the TTL; leases here share few TTLs.
        let ttls: BTreeSet<Duration> = self.leases.values().map(|&(t, _)| t).collect();
        for ttl in ttls {
            let bound = |from: Duration, to: Duration| self.slack(ttl, from, to);
            let v = lease_check::check_with(&self.history, Self::drift(ttl), &bound, now);
            if let Some(v) = v.into_iter().find(|v| v.rule == rule && v.ttl == ttl) {
                let owner = self.leases.get(&v.lease).map_or(0, |&(_, o)| o);
                return Some(format!("{v} (owner: node {owner})"));
            }
        }
        None
    }
}

impl Checker<EtcdNode> for LeaseGuarantee {
    fn name(&self) -> &'static str {
        "lease-guarantee"
    }

    fn after_step(&mut self, view: &ClusterView<'_, EtcdNode>, node: NodeId) -> Result<(), String> {
        let now = view.now;
        match view.node(node) {
            Some(EtcdNode::Instance(i)) => {
                for &seq in i.first_sent_in_step() {
                    if self.first_sent.len() >= FIRST_SENT_MAX {
                        self.first_sent.pop_first();
                    }
                    self.first_sent.insert((node, seq), now);
                }
                for &(seq, lease, ttl_ms) in i.granted_in_step() {
                    let sent = self.first_sent.remove(&(node, seq)).unwrap_or(now);
                    self.history.grant_between(lease, ttl_ms, sent, now);
                    if let Some(&at) = self.revoked.get(&lease) {
                        self.history.expired(lease, at);
                    }
                    self.leases
                        .insert(lease, (Duration::from_millis(ttl_ms), node));
                }
                for &lease in i.keepalives_sent_in_step() {
                    self.history.attempt(lease, now);
                }
                for &(seq, lease) in i.kept_alive_in_step() {
                    let sent = self.first_sent.remove(&(node, seq)).unwrap_or(now);
                    self.history.keepalive_between(lease, sent, now);
                }
            }
            Some(EtcdNode::Server(s)) => {
                let raft = s.raft();
                if let Some(&(leader, _, None, _)) = self.tenures.last() {
                    if leader == node && !raft.is_leader() {
                        self.end_tenure(view, now);
                    }
                }
                // A leader takes the leases over once it applied an entry of its
                // own term (etcd promotes its lessor then): that starts its tenure.
                let effective = raft.log().term(raft.applied_index()) == Some(raft.term());
                if raft.is_leader() && raft.term() > self.term && effective {
                    self.term = raft.term();
                    self.end_tenure(view, now);
                    self.tenures.push((node, now, None, view.stalled(node)));
                }
                for &id in s.renewed_in_step() {
                    self.history.attempt(id, now);
                }
                let mut fresh = false;
                for &id in s.revoked_in_step() {
                    if let std::collections::btree_map::Entry::Vacant(e) = self.revoked.entry(id) {
                        e.insert(now);
                        fresh = true;
                        self.history.expired(id, now);
                        let owner_up = self
                            .leases
                            .get(&id)
                            .is_some_and(|&(_, o)| view.node(o).is_some());
                        self.expired_owner_up += u64::from(owner_up);
                    }
                }
                if fresh {
                    if let Some(v) = self.violations(now, Rule::RevokedWhileAlive) {
                        return Err(v);
                    }
                }
            }
            Some(EtcdNode::Caller(_)) => {}
            None => {
                self.first_sent.retain(|&(n, _), _| n != node);
                if let Some(&(leader, _, None, _)) = self.tenures.last() {
                    if leader == node {
                        self.end_tenure(view, now);
                    }
                }
            }
        }
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, EtcdNode>) -> Result<(), String> {
        match self.violations(view.now, Rule::NotRevoked) {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert("leases_granted".into(), self.leases.len() as f64);
        out.insert("leases_expired".into(), self.revoked.len() as f64);
        out.insert(
            "leases_expired_owner_up".into(),
            self.expired_owner_up as f64,
        );
    }
}

/// The six watch guarantees on every caller's streams, against the events the
/// members committed; checked as each caller receives.
pub struct WatchGuarantees {
    log: EventLog,
    /// Per caller: its current stream and the start revision of a creation sent.
    streams: BTreeMap<NodeId, (Stream, Option<u64>)>,
    next_watcher: u64,
    events_received: u64,
}

impl WatchGuarantees {
    /// An empty checker.
    pub fn new() -> Self {
        WatchGuarantees {
            log: EventLog::new(),
            streams: BTreeMap::new(),
            next_watcher: 0,
            events_received: 0,
        }
    }
}

impl Default for WatchGuarantees {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker<EtcdNode> for WatchGuarantees {
    fn name(&self) -> &'static str {
        "watch-guarantees"
    }

    fn after_step(&mut self, view: &ClusterView<'_, EtcdNode>, node: NodeId) -> Result<(), String> {
        match view.node(node) {
            Some(EtcdNode::Server(s)) => {
                let store = s.store();
                // A store restored past compacted revisions cannot add them; the
                // members that applied them one by one did.
                if store.compacted() <= self.log.last_revision() + 1 {
                    self.log.record(store);
                }
            }
            Some(EtcdNode::Caller(c)) if !c.watch_in_step().is_empty() => {
                let (key, range_end) = c.range();
                for rec in c.watch_in_step() {
                    if let WatchRecord::Stream = rec {
                        self.next_watcher += 1;
                        let stream = Stream {
                            watcher: self.next_watcher,
                            range: Range {
                                key: key.clone(),
                                range_end: range_end.clone(),
                            },
                            segments: Vec::new(),
                        };
                        self.streams.insert(node, (stream, None));
                        continue;
                    }
                    let Some((stream, open)) = self.streams.get_mut(&node) else {
                        continue;
                    };
                    match rec {
                        WatchRecord::Stream => unreachable!(),
                        WatchRecord::Open(rev) => *open = Some(*rev),
                        WatchRecord::Opened(o) => {
                            let Some(start_revision) = open.take() else {
                                continue;
                            };
                            stream.segments.push(Segment {
                                start_revision,
                                opened: *o,
                                responses: Vec::new(),
                            });
                        }
                        WatchRecord::Received(r) => {
                            if let watch_check::Received::Events(e) = r {
                                self.events_received += e.len() as u64;
                            }
                            if let Some(seg) = stream.segments.last_mut() {
                                seg.responses.push(r.clone());
                            }
                        }
                    }
                }
                if let Some((stream, _)) = self.streams.get(&node) {
                    if let Some(v) = watch_check::check(&self.log, stream) {
                        return Err(format!("{v} (caller: node {node})"));
                    }
                }
            }
            // A caller's stream ends with its incarnation.
            None => {
                self.streams.remove(&node);
            }
            _ => {}
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        let writes = self.log.last_revision();
        out.insert("watch_events_delivered".into(), self.events_received as f64);
        if writes > 0 {
            out.insert(
                "watch_events_per_write".into(),
                self.events_received as f64 / writes as f64,
            );
        }
    }
}

/// The discovery figures of a run: what callers saw of instances that stopped,
/// and how their calls fared ([`Recorder`]). An instance is registered while the
/// most advanced member's store holds its key.
pub struct DiscoveryFigures {
    recorder: Recorder,
    prefix: String,
    /// The revision up to which registrations were read from the members.
    revision: u64,
}

impl DiscoveryFigures {
    /// The figures of service `service`, whose instances are nodes
    /// `first_instance..callers.start` and callers `callers`.
    pub fn new(service: &str, first_instance: NodeId, callers: std::ops::Range<NodeId>) -> Self {
        DiscoveryFigures {
            recorder: Recorder::new(first_instance..callers.start, callers),
            prefix: format!("services/{service}/"),
            revision: 0,
        }
    }
}

impl Checker<EtcdNode> for DiscoveryFigures {
    fn name(&self) -> &'static str {
        "discovery"
    }

    fn after_step(&mut self, view: &ClusterView<'_, EtcdNode>, node: NodeId) -> Result<(), String> {
        let now = view.now;
        match view.node(node) {
            None => self.recorder.down(now, node),
            Some(EtcdNode::Server(s)) => {
                self.recorder.member(now, node);
                let store = s.store();
                if store.revision() > self.revision && store.compacted() <= self.revision + 1 {
                    let events = store.events_from(self.revision + 1).unwrap_or_default();
                    for (_, e) in events {
                        let Some(id) =
                            e.kv.key
                                .strip_prefix(&self.prefix)
                                .and_then(|n| n.parse().ok())
                        else {
                            continue;
                        };
                        match e.kind {
                            EventKind::Put => self.recorder.registered(now, id),
                            // Instances never deregister here: a key goes only when
                            // its lease expires.
                            EventKind::Delete => self.recorder.unregistered(now, id, true),
                        }
                    }
                    self.revision = store.revision();
                }
            }
            Some(EtcdNode::Instance(i)) => {
                self.recorder.instance(now, node, i.answer() == Some(true))
            }
            Some(EtcdNode::Caller(c)) => self.recorder.caller(
                now,
                node,
                c.endpoints(),
                c.changed_in_step(),
                c.started_in_step(),
                c.calls_in_step(),
            ),
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        self.recorder.figures(out);
    }
}

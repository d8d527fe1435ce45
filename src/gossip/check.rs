//! SWIM invariants, liveness and metrics as [`Checker`]s.
//!
//! Each looks only at the members the stepping node reports as changed
//! ([`SwimProcess::changed`]), so the hot path costs O(changes), not O(n).

use std::time::Duration;

use super::config::SwimConfig;
use super::member::MemberState;
use super::swim::{Phase, SwimProcess};
use crate::check::{Checker, ClusterView, Metrics};
use crate::process::NodeId;

/// All SWIM checkers for a cluster of `nodes`.
pub fn checkers(cfg: &SwimConfig, nodes: usize) -> Vec<Box<dyn Checker<SwimProcess>>> {
    vec![
        Box::new(IncarnationChecker::new(nodes)),
        Box::new(PrecedenceChecker::new(nodes)),
        Box::new(RetransmitChecker::new(cfg, nodes)),
        Box::new(ConvergenceChecker::default()),
        Box::new(DetectionMetrics::new(cfg, nodes)),
    ]
}

/// Incarnations only grow and only their owner raises them; a live member never
/// holds itself suspect or dead (SWIM §4.2).
pub struct IncarnationChecker {
    /// Highest incarnation each member has given itself, across restarts.
    own_max: Vec<Option<u64>>,
}

impl IncarnationChecker {
    pub fn new(nodes: usize) -> Self {
        IncarnationChecker {
            own_max: vec![None; nodes],
        }
    }
}

impl Checker<SwimProcess> for IncarnationChecker {
    fn name(&self) -> &'static str {
        "swim-incarnation"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, SwimProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(p) = view.node(node) else {
            return Ok(());
        };
        let own = p.incarnation();
        if let Some(max) = self.own_max[node] {
            if own < max {
                return Err(format!(
                    "node {node}'s own incarnation went back from {max} to {own}"
                ));
            }
        }
        self.own_max[node] = Some(own);
        if let Some(me) = p.member(node) {
            let leaving = matches!(p.phase(), Phase::Leaving | Phase::Left);
            let ok = me.state == MemberState::Alive || (leaving && me.state == MemberState::Left);
            if !ok {
                return Err(format!(
                    "live node {node} holds itself {:?} at incarnation {}",
                    me.state, me.incarnation
                ));
            }
        }
        for &x in p.changed() {
            if x == node {
                continue;
            }
            let m = p.member(x).expect("a changed member has a record");
            let owner = self.own_max[x].unwrap_or(0);
            if m.incarnation > owner {
                return Err(format!(
                    "node {node} holds {x} at incarnation {}, above any {x} gave itself ({owner})",
                    m.incarnation
                ));
            }
        }
        Ok(())
    }
}

/// A node's view never moves backwards in (incarnation, state) order, where for one
/// incarnation dead/left > suspect > alive. Keeps a shadow of every view: n² small
/// entries, reset when the observer crashes.
pub struct PrecedenceChecker {
    shadow: Vec<Vec<Option<(u64, u8)>>>,
}

impl PrecedenceChecker {
    pub fn new(nodes: usize) -> Self {
        PrecedenceChecker {
            shadow: vec![Vec::new(); nodes],
        }
    }
}

impl Checker<SwimProcess> for PrecedenceChecker {
    fn name(&self) -> &'static str {
        "swim-precedence"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, SwimProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(p) = view.node(node) else {
            self.shadow[node].clear();
            return Ok(());
        };
        let shadow = &mut self.shadow[node];
        if shadow.is_empty() {
            shadow.resize(view.nodes.len(), None);
        }
        for &x in p.changed() {
            let m = p.member(x).expect("a changed member has a record");
            let new = m.order_key();
            if let Some(old) = shadow[x] {
                if new < old {
                    return Err(format!(
                        "node {node}'s view of {x} went back from (incarnation {}, rank {}) to {:?} at incarnation {}",
                        old.0, old.1, m.state, m.incarnation
                    ));
                }
            }
            shadow[x] = Some(new);
        }
        Ok(())
    }
}

/// No member sends one update more than λ · ⌈log10(n + 1)⌉ times (SWIM §4.1).
pub struct RetransmitChecker {
    limit: u32,
}

impl RetransmitChecker {
    pub fn new(cfg: &SwimConfig, nodes: usize) -> Self {
        RetransmitChecker {
            limit: cfg.retransmit_limit(nodes),
        }
    }
}

impl Checker<SwimProcess> for RetransmitChecker {
    fn name(&self) -> &'static str {
        "swim-retransmit-limit"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, SwimProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(p) = view.node(node) else {
            return Ok(());
        };
        let sent = p.max_update_transmits();
        if sent > self.limit {
            return Err(format!(
                "node {node} sent one update {sent} times, above the limit {}",
                self.limit
            ));
        }
        Ok(())
    }
}

/// Whether `p`'s member is part of the group: joined and not leaving.
fn is_live(p: &SwimProcess) -> bool {
    p.phase() == Phase::Active
}

/// What a member is, for the convergence rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Crashed, or left: others must hold it down (or never have heard of it).
    Gone,
    /// Not joined yet: others may hold anything.
    Dormant,
    Live,
}

fn status(p: Option<&SwimProcess>) -> Status {
    match p.map(|p| p.phase()) {
        Some(Phase::Active) => Status::Live,
        Some(Phase::Dormant) => Status::Dormant,
        _ => Status::Gone,
    }
}

/// Does live observer `p` hold `x` as it should?
fn entry_ok(p: &SwimProcess, x: NodeId, target: Status) -> bool {
    let held = p.member(x).map(|m| m.state);
    match target {
        Status::Live => held == Some(MemberState::Alive),
        Status::Dormant => true,
        Status::Gone => held.is_none_or(|s| s.is_down()),
    }
}

/// Liveness: every live member holds exactly the live members alive and every
/// crashed or departed member dead or left (or never heard of it).
///
/// Kept incrementally: a matrix of wrong entries updated from each step's changed
/// members (a row or column is recomputed only when a member crashes, restarts,
/// joins or leaves), so `settled` is O(1) once converged.
#[derive(Default)]
pub struct ConvergenceChecker {
    first_poll: Option<Duration>,
    settled_at: Option<Duration>,
    status: Vec<Status>,
    /// `wrong[o][x]`: live observer `o` holds `x` wrongly.
    wrong: Vec<Vec<bool>>,
    wrong_count: usize,
}

impl ConvergenceChecker {
    /// A full scan of the cluster: `Err` names the first disagreement and how many
    /// there are.
    pub fn disagreement(view: &ClusterView<'_, SwimProcess>) -> Result<(), String> {
        let (count, first) = Self::scan(view);
        match first {
            None => Ok(()),
            Some(f) => Err(format!("{count} view entries disagree; first: {f}")),
        }
    }

    /// Counts wrong entries over the whole cluster, describing the first.
    pub fn scan(view: &ClusterView<'_, SwimProcess>) -> (usize, Option<String>) {
        let mut first = None;
        let mut count = 0usize;
        for (o, p) in view.up().filter(|(_, p)| is_live(p)) {
            for x in (0..view.nodes.len()).filter(|&x| x != o) {
                let target = status(view.node(x));
                if !entry_ok(p, x, target) {
                    count += 1;
                    if first.is_none() {
                        let held = p.member(x).map(|m| m.state);
                        first = Some(format!("node {o} holds {x} {held:?}, which is {target:?}"));
                    }
                }
            }
        }
        (count, first)
    }

    fn set(&mut self, o: NodeId, x: NodeId, wrong: bool) {
        let cell = &mut self.wrong[o][x];
        if *cell != wrong {
            *cell = wrong;
            if wrong {
                self.wrong_count += 1;
            } else {
                self.wrong_count -= 1;
            }
        }
    }

    fn recompute(&mut self, view: &ClusterView<'_, SwimProcess>, o: NodeId, x: NodeId) {
        if o == x {
            return;
        }
        let wrong = match view.node(o) {
            Some(p) if self.status[o] == Status::Live => !entry_ok(p, x, self.status[x]),
            _ => false,
        };
        self.set(o, x, wrong);
    }

    /// Wrong entries counted incrementally; equals the full scan's count.
    pub fn wrong_count(&self) -> usize {
        self.wrong_count
    }
}

impl Checker<SwimProcess> for ConvergenceChecker {
    fn name(&self) -> &'static str {
        "swim-convergence"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, SwimProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let n = view.nodes.len();
        if self.status.is_empty() {
            // Every node starts Gone until it steps, with nothing wrong yet.
            self.status = vec![Status::Gone; n];
            self.wrong = vec![vec![false; n]; n];
        }
        let now = status(view.node(node));
        if now != self.status[node] {
            self.status[node] = now;
            for x in 0..n {
                self.recompute(view, node, x);
                self.recompute(view, x, node);
            }
        } else if let Some(p) = view.node(node) {
            for &x in p.changed() {
                self.recompute(view, node, x);
            }
        }
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, SwimProcess>) -> Result<(), String> {
        self.first_poll.get_or_insert(view.now);
        let r = if self.status.is_empty() {
            Self::disagreement(view)
        } else if self.wrong_count == 0 {
            Ok(())
        } else {
            let (o, x) = self
                .wrong
                .iter()
                .enumerate()
                .find_map(|(o, row)| row.iter().position(|&w| w).map(|x| (o, x)))
                .expect("a positive count has a wrong entry");
            let held = view.node(o).and_then(|p| p.member(x)).map(|m| m.state);
            Err(format!(
                "{} view entries disagree; first: node {o} holds {x} {held:?}, which is {:?}",
                self.wrong_count, self.status[x]
            ))
        };
        if r.is_ok() && self.settled_at.is_none() {
            self.settled_at = Some(view.now);
        }
        r
    }

    fn metrics(&self, out: &mut Metrics) {
        if let (Some(a), Some(b)) = (self.first_poll, self.settled_at) {
            out.insert(
                "convergence_after_heal_ms".into(),
                b.saturating_sub(a).as_secs_f64() * 1000.0,
            );
        }
    }
}

#[derive(Clone, Debug)]
struct Crash {
    node: NodeId,
    at: Duration,
    first_suspect: Option<Duration>,
    first_dead: Option<Duration>,
    full: Option<Duration>,
}

#[derive(Clone, Debug)]
struct FalseDead {
    observer: NodeId,
    target: NodeId,
    at_ms: f64,
}

/// Metrics: detection latency per crash, false positives, message load.
///
/// - `first_suspicion_ms`: crash (node seen `None`) → first live member holds it suspect.
/// - `first_dead_ms`: crash → first live member holds it dead.
/// - `full_dissemination_ms`: crash → every live member holds it dead.
///   Each as `_mean`, `_p50`, `_p99`, `_p999` over the run's crashes (a crash ended by
///   a restart before the figure was reached does not count).
/// - `false_positive_dead`: times a member declared dead a member that was up;
///   `false_positive_dead_healthy` (Lifeguard's FP-): those where neither observer nor
///   target stalled (paused or starved) within one Max suspicion timeout + probe
///   period before the declaration; `false_positive_suspect`: suspicions of up members.
/// - `messages_per_member_per_period`: sends per member-up-time per probe interval.
pub struct DetectionMetrics {
    window_ms: f64,
    probe_interval_ms: f64,
    up: Vec<bool>,
    up_since: Vec<Duration>,
    up_total: Duration,
    open: Vec<Option<usize>>,
    crashes: Vec<Crash>,
    false_dead: Vec<FalseDead>,
    false_suspect: u64,
    /// Messages sent by each node's current incarnation, and by finished ones.
    sent_now: Vec<u64>,
    sent_closed: u64,
    /// Stall intervals in true time (ms), per node, and the latest copied end.
    stalls_ms: Vec<Vec<(f64, f64)>>,
    last_now: Duration,
    /// Each member's incarnation when its current life began.
    life_incarnation: Vec<u64>,
}

const RECORDS_MAX: usize = 1 << 16;

impl DetectionMetrics {
    pub fn new(cfg: &SwimConfig, nodes: usize) -> Self {
        let window = cfg.suspicion_max(nodes) + cfg.probe_period_max();
        DetectionMetrics {
            window_ms: window.as_secs_f64() * 1000.0,
            probe_interval_ms: cfg.probe_interval_ms as f64,
            up: vec![false; nodes],
            up_since: vec![Duration::ZERO; nodes],
            up_total: Duration::ZERO,
            open: vec![None; nodes],
            crashes: Vec::new(),
            false_dead: Vec::new(),
            false_suspect: 0,
            sent_now: vec![0; nodes],
            sent_closed: 0,
            stalls_ms: vec![Vec::new(); nodes],
            last_now: Duration::ZERO,
            life_incarnation: vec![0; nodes],
        }
    }

    fn all_hold_down(view: &ClusterView<'_, SwimProcess>, x: NodeId) -> bool {
        view.up()
            .filter(|(o, p)| *o != x && is_live(p))
            .all(|(_, p)| p.member(x).is_some_and(|m| m.state.is_down()))
    }

    fn stalled_near(&self, node: NodeId, at_ms: f64) -> bool {
        self.stalls_ms[node]
            .iter()
            .any(|&(a, b)| a <= at_ms && b >= at_ms - self.window_ms)
    }
}

fn stats(out: &mut Metrics, name: &str, mut xs: Vec<f64>) {
    if xs.is_empty() {
        return;
    }
    xs.sort_by(f64::total_cmp);
    let rank = |q: f64| xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
    out.insert(
        format!("{name}_mean"),
        xs.iter().sum::<f64>() / xs.len() as f64,
    );
    out.insert(format!("{name}_p50"), rank(0.5));
    out.insert(format!("{name}_p99"), rank(0.99));
    out.insert(format!("{name}_p999"), rank(0.999));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Checker<SwimProcess> for DetectionMetrics {
    fn name(&self) -> &'static str {
        "swim-detection"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, SwimProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let now = view.now;
        self.last_now = now;
        let Some(p) = view.node(node) else {
            if self.up[node] {
                self.up[node] = false;
                self.up_total += now.saturating_sub(self.up_since[node]);
                self.sent_closed += std::mem::take(&mut self.sent_now[node]);
                // The crash of the last member still holding an earlier crashed one
                // alive completes that one's dissemination.
                for i in self.open.iter().flatten().copied().collect::<Vec<_>>() {
                    let c = &mut self.crashes[i];
                    if c.full.is_none()
                        && c.first_dead.is_some()
                        && Self::all_hold_down(view, c.node)
                    {
                        c.full = Some(now.saturating_sub(c.at));
                    }
                }
                if self.crashes.len() < RECORDS_MAX {
                    self.open[node] = Some(self.crashes.len());
                    self.crashes.push(Crash {
                        node,
                        at: now,
                        first_suspect: None,
                        first_dead: None,
                        full: None,
                    });
                }
            }
            return Ok(());
        };
        if !self.up[node] {
            self.up[node] = true;
            self.up_since[node] = now;
            self.open[node] = None;
            self.life_incarnation[node] = p.incarnation();
        }
        self.sent_now[node] = p.messages_sent();
        // Copy new stall intervals, mapping local to true time by this step's offset.
        if let Some(local) = p.last_step_at() {
            let offset_ms = ms(now) - ms(local);
            let known_end = self.stalls_ms[node].last().map(|s| s.1);
            for &(a, b) in p.stalls() {
                let (a, b) = (ms(a) + offset_ms, ms(b) + offset_ms);
                if known_end.is_none_or(|e| b > e + 0.5) && self.stalls_ms[node].len() < RECORDS_MAX
                {
                    self.stalls_ms[node].push((a, b));
                }
            }
        }
        for &x in p.changed() {
            if x == node {
                continue;
            }
            let state = p.member(x).expect("a changed member has a record").state;
            if let Some(i) = self.open[x] {
                let c = &mut self.crashes[i];
                debug_assert_eq!(c.node, x);
                let since = now.saturating_sub(c.at);
                if state == MemberState::Suspect && c.first_suspect.is_none() {
                    c.first_suspect = Some(since);
                }
                if state.is_down() {
                    c.first_suspect.get_or_insert(since);
                    c.first_dead.get_or_insert(since);
                    if c.full.is_none() && Self::all_hold_down(view, x) {
                        c.full = Some(since);
                    }
                }
            } else if view.node(x).is_some_and(is_live)
                // A verdict on an earlier life of a restarted member is no mistake.
                && p.member(x).is_some_and(|m| m.incarnation >= self.life_incarnation[x])
            {
                match state {
                    MemberState::Suspect => self.false_suspect += 1,
                    MemberState::Dead if self.false_dead.len() < RECORDS_MAX => {
                        self.false_dead.push(FalseDead {
                            observer: node,
                            target: x,
                            at_ms: ms(now),
                        })
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        let pick = |f: fn(&Crash) -> Option<Duration>| -> Vec<f64> {
            self.crashes.iter().filter_map(f).map(ms).collect()
        };
        out.insert("crashes".into(), self.crashes.len() as f64);
        stats(out, "first_suspicion_ms", pick(|c| c.first_suspect));
        stats(out, "first_dead_ms", pick(|c| c.first_dead));
        stats(out, "full_dissemination_ms", pick(|c| c.full));
        out.insert("false_positive_dead".into(), self.false_dead.len() as f64);
        let healthy = self
            .false_dead
            .iter()
            .filter(|f| {
                !self.stalled_near(f.observer, f.at_ms) && !self.stalled_near(f.target, f.at_ms)
            })
            .count();
        out.insert("false_positive_dead_healthy".into(), healthy as f64);
        out.insert("false_positive_suspect".into(), self.false_suspect as f64);
        let mut up = self.up_total;
        for (i, &u) in self.up.iter().enumerate() {
            if u {
                up += self.last_now.saturating_sub(self.up_since[i]);
            }
        }
        let periods = ms(up) / self.probe_interval_ms;
        if periods > 0.0 {
            let sent = self.sent_closed + self.sent_now.iter().sum::<u64>();
            out.insert(
                "messages_per_member_per_period".into(),
                sent as f64 / periods,
            );
        }
    }
}

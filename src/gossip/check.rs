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
    /// A checker for a cluster of `nodes`.
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

/// Whether an observer may replace its record `old` of a member with `new`, each an
/// (incarnation, state) pair. Written from the SWIM paper's override rules (§4.2), not
/// from the protocol's own order, so that the check does not reuse what it checks:
///
/// | new \ old      | Alive(j) | Suspect(j) | Confirm(j) (dead, left) |
/// |----------------|----------|------------|-------------------------|
/// | Alive(i)       | i > j    | i > j      | i > j                   |
/// | Suspect(i)     | i ≥ j    | i > j      | i > j                   |
/// | Confirm(i)     | i ≥ j    | i ≥ j      | i > j                   |
///
/// Two deviations, both memberlist's: the paper lets Confirm override any incarnation,
/// but a member that restarted with a higher incarnation must not be killed by a stale
/// death rumour, so Confirm needs i ≥ j; and the paper drops a confirmed member from
/// the list, so the Confirm column (a member that came back at a higher incarnation, or
/// died again) is memberlist's rejoin rule. A graceful leave is a Confirm sent by the
/// member itself.
pub fn swim_permits(old: (u64, MemberState), new: (u64, MemberState)) -> bool {
    use MemberState::{Alive, Dead, Left, Suspect};
    let ((j, from), (i, to)) = (old, new);
    match (to, from) {
        (Alive, _) => i > j,
        (Suspect, Alive) => i >= j,
        (Suspect, Suspect | Dead | Left) => i > j,
        (Dead | Left, Alive | Suspect) => i >= j,
        (Dead | Left, Dead | Left) => i > j,
    }
}

/// Every change to a node's view of a member is one SWIM permits ([`swim_permits`]).
/// Keeps a shadow of every view: n² small entries, reset when the observer crashes.
pub struct PrecedenceChecker {
    shadow: Vec<Vec<Option<(u64, MemberState)>>>,
}

impl PrecedenceChecker {
    /// A checker for a cluster of `nodes`.
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
            let new = (m.incarnation, m.state);
            match shadow[x] {
                Some(old) if old != new && !swim_permits(old, new) => {
                    return Err(format!(
                        "node {node}'s view of {x} went from {:?} at incarnation {} to {:?} at \
                         incarnation {}, which SWIM's override rules do not permit",
                        old.1, old.0, m.state, m.incarnation
                    ));
                }
                _ => shadow[x] = Some(new),
            }
        }
        Ok(())
    }
}

/// No member sends one update more than λ · ⌈log10(n + 1)⌉ times (SWIM §4.1).
pub struct RetransmitChecker {
    limit: u32,
}

impl RetransmitChecker {
    /// A checker for a cluster of `nodes` with `cfg`'s retransmit limit.
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
        let first = *self.first_poll.get_or_insert(view.now);
        // The heal restarts crashed members, but they run their start-up only once the
        // simulator schedules them, after this first poll: until then a restarted member
        // still looks crashed, and a view holding it dead would pass. Never judge on
        // the heal instant.
        if view.now == first {
            return Err("waiting for restarted members to start".into());
        }
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
    /// Each member's probe-period count when the crash happened (`None`: not live).
    periods_at_crash: Vec<Option<u64>>,
    /// Fewest probe periods any member took, counting from its first period that
    /// began after the crash, to pick the crashed member as its probe target.
    first_pick_periods: Option<u64>,
}

#[derive(Clone, Debug)]
struct FalseVerdict {
    observer: NodeId,
    target: NodeId,
    at_ms: f64,
}

/// Metrics: detection latency per crash, false positives, message load.
///
/// - `first_detection_ms`: crash (node seen `None`) → some live member suspects it
///   (or holds it down, if that news came first).
/// - `first_detection_periods`: the quantity of SWIM §3.1's analysis. For each live
///   member, count its probe periods from the first one begun after the crash up to
///   and including the first that targets the crashed member; take the fewest over
///   all members. With uniformly random targets its expectation is
///   1 / (1 − (1 − 1/(n − 1))^(n − 1)) → e/(e − 1) ≈ 1.582.
/// - `first_dead_ms`: crash → first live member holds it dead.
/// - `full_dissemination_ms`: crash → every live member holds it dead.
///   Each as `_mean`, `_p50`, `_p99`, `_p999` over the run's crashes (a crash ended by
///   a restart before the figure was reached does not count).
/// - `false_positive_dead`: deaths of up, joined members declared by a member itself
///   (its suspicion timed out), not counting those it merely heard;
///   `false_positive_dead_healthy` (Lifeguard's FP-): those where neither the declarer
///   nor the declared member was paused, slow (or stalled) within one Max suspicion timeout
///   plus a probe period before the declaration; `false_positive_dead_about_healthy`
///   (Lifeguard's FP): those where the declared member was not, whoever declared it.
/// - `false_positive_dead_views`: view entries that turned dead for an up member.
/// - `false_positive_suspect`: failed probes of up members (each a detection in SWIM's
///   basic protocol, which has no suspicion); `false_positive_suspect_per_member_period`
///   divides by member-up-time in probe intervals (SWIM §3.1's false-positive rate).
/// - `messages_per_member_per_period`, `bytes_per_member_per_period`: sends per
///   member-up-time per probe interval.
pub struct DetectionMetrics {
    window_ms: f64,
    probe_interval_ms: f64,
    up: Vec<bool>,
    up_since: Vec<Duration>,
    up_total: Duration,
    open: Vec<Option<usize>>,
    /// Open crashes whose first pick is still to be seen: indexes into `crashes`.
    picking: Vec<usize>,
    crashes: Vec<Crash>,
    false_dead: Vec<FalseVerdict>,
    false_dead_views: u64,
    false_suspect: u64,
    /// Messages and bytes sent by each node's current incarnation, and by finished ones.
    sent_now: Vec<(u64, u64)>,
    sent_closed: (u64, u64),
    /// Stall intervals in true time (ms), per node, as the members report them.
    stalls_ms: Vec<Vec<(f64, f64)>>,
    /// Pause intervals in true time (ms), per node, from the simulator's view; an
    /// open pause ends at infinity.
    pauses_ms: Vec<Vec<(f64, f64)>>,
    paused: Vec<bool>,
    slow: Vec<bool>,
    last_now: Duration,
    /// Each member's incarnation when its current life began.
    life_incarnation: Vec<u64>,
}

/// Most crashes, false verdicts, and pause or stall intervals per node the metrics
/// keep; later ones are not recorded, so the figures cover the first ones only. No
/// shipped scenario comes near it: it keeps a long soak's memory flat.
const RECORDS_MAX: usize = 1 << 16;
/// Crashes whose first pick is tracked at once (each costs a check per step).
const PICKING_MAX: usize = 64;

impl DetectionMetrics {
    /// Metrics for a cluster of `nodes` with `cfg`.
    pub fn new(cfg: &SwimConfig, nodes: usize) -> Self {
        let window = cfg.suspicion_max(nodes) + cfg.probe_period_max();
        DetectionMetrics {
            window_ms: window.as_secs_f64() * 1000.0,
            probe_interval_ms: cfg.probe_interval_ms as f64,
            up: vec![false; nodes],
            up_since: vec![Duration::ZERO; nodes],
            up_total: Duration::ZERO,
            open: vec![None; nodes],
            picking: Vec::new(),
            crashes: Vec::new(),
            false_dead: Vec::new(),
            false_dead_views: 0,
            false_suspect: 0,
            sent_now: vec![(0, 0); nodes],
            sent_closed: (0, 0),
            stalls_ms: vec![Vec::new(); nodes],
            pauses_ms: vec![Vec::new(); nodes],
            paused: vec![false; nodes],
            slow: vec![false; nodes],
            last_now: Duration::ZERO,
            life_incarnation: vec![0; nodes],
        }
    }

    fn all_hold_down(view: &ClusterView<'_, SwimProcess>, x: NodeId) -> bool {
        view.up()
            .filter(|(o, p)| *o != x && is_live(p))
            .all(|(_, p)| p.member(x).is_some_and(|m| m.state.is_down()))
    }

    /// Was `node` paused or stalled at any time in the window before `at_ms`?
    fn unhealthy_near(&self, node: NodeId, at_ms: f64) -> bool {
        let near = |&(a, b): &(f64, f64)| a <= at_ms && b >= at_ms - self.window_ms;
        self.stalls_ms[node].iter().any(near) || self.pauses_ms[node].iter().any(near)
    }

    /// Follows pauses and resumes, and `slow` faults starting and ending (a slow
    /// member is no healthier than a paused one); the slice compares are cheap when
    /// nothing changed.
    fn track_pauses(&mut self, view: &ClusterView<'_, SwimProcess>) {
        let same = |view: &[bool], known: &[bool]| view.is_empty() || view == known;
        if same(view.paused, &self.paused) && same(view.slow, &self.slow) {
            return;
        }
        let now = ms(view.now);
        for i in 0..self.paused.len() {
            let was = self.paused[i] || self.slow[i];
            self.paused[i] = view.is_paused(i);
            self.slow[i] = view.is_slow(i);
            let p = self.paused[i] || self.slow[i];
            if p == was {
                continue;
            }
            let list = &mut self.pauses_ms[i];
            if p {
                if list.len() < RECORDS_MAX {
                    list.push((now, f64::INFINITY));
                }
            } else if let Some(last) = list.last_mut() {
                if last.1.is_infinite() {
                    last.1 = now;
                }
            }
        }
    }

    fn on_crash(&mut self, view: &ClusterView<'_, SwimProcess>, node: NodeId) {
        let now = view.now;
        self.up[node] = false;
        self.up_total += now.saturating_sub(self.up_since[node]);
        let (m, b) = std::mem::take(&mut self.sent_now[node]);
        self.sent_closed.0 += m;
        self.sent_closed.1 += b;
        // The crash of the last member still holding an earlier crashed one alive
        // completes that one's dissemination.
        for i in self.open.iter().flatten().copied().collect::<Vec<_>>() {
            let c = &mut self.crashes[i];
            if c.full.is_none() && c.first_dead.is_some() && Self::all_hold_down(view, c.node) {
                c.full = Some(now.saturating_sub(c.at));
            }
        }
        if self.crashes.len() >= RECORDS_MAX {
            return;
        }
        let tracked = self.picking.len() < PICKING_MAX;
        let periods_at_crash = if tracked {
            view.nodes
                .iter()
                .map(|p| p.as_ref().filter(|p| is_live(p)).map(|p| p.probe_periods()))
                .collect()
        } else {
            Vec::new()
        };
        let i = self.crashes.len();
        self.open[node] = Some(i);
        if tracked {
            self.picking.push(i);
        }
        self.crashes.push(Crash {
            node,
            at: now,
            first_suspect: None,
            first_dead: None,
            full: None,
            periods_at_crash,
            first_pick_periods: None,
        });
    }

    /// Has `node` just begun a probe period that targets a crashed member?
    fn track_picks(&mut self, p: &SwimProcess, node: NodeId) {
        let Some(target) = p.probe_target() else {
            return;
        };
        for &i in &self.picking {
            let c = &mut self.crashes[i];
            if c.node != target {
                continue;
            }
            if let Some(Some(base)) = c.periods_at_crash.get(node) {
                // Periods begun since the crash, this one included.
                let r = p.probe_periods().saturating_sub(*base);
                if r >= 1 && c.first_pick_periods.is_none_or(|f| r < f) {
                    c.first_pick_periods = Some(r);
                }
            }
        }
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
        self.track_pauses(view);
        let Some(p) = view.node(node) else {
            if self.up[node] {
                self.on_crash(view, node);
            }
            return Ok(());
        };
        if !self.up[node] {
            self.up[node] = true;
            self.up_since[node] = now;
            if let Some(i) = self.open[node].take() {
                self.picking.retain(|&j| j != i);
            }
            self.life_incarnation[node] = p.incarnation();
        }
        self.sent_now[node] = (p.messages_sent(), p.bytes_sent());
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
        if !self.picking.is_empty() {
            self.track_picks(p, node);
        }
        // Is `x`, as `p` holds it, a live member in its current life?
        let live_now = |x: NodeId| {
            view.node(x).is_some_and(is_live)
                // A verdict on an earlier life of a restarted member is no mistake.
                && p.member(x).is_some_and(|m| m.incarnation >= self.life_incarnation[x])
        };
        for &(x, state) in p.declared() {
            if x == node || self.open[x].is_some() || !live_now(x) {
                continue;
            }
            match state {
                MemberState::Suspect => self.false_suspect += 1,
                MemberState::Dead if self.false_dead.len() < RECORDS_MAX => {
                    self.false_dead.push(FalseVerdict {
                        observer: node,
                        target: x,
                        at_ms: ms(now),
                    })
                }
                _ => {}
            }
        }
        for &x in p.changed() {
            if x == node {
                continue;
            }
            let state = p.member(x).expect("a changed member has a record").state;
            if let Some(i) = self.open[x] {
                let c = &mut self.crashes[i];
                assert_eq!(c.node, x);
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
            } else if state == MemberState::Dead && live_now(x) {
                self.false_dead_views += 1;
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        let pick = |f: fn(&Crash) -> Option<Duration>| -> Vec<f64> {
            self.crashes.iter().filter_map(f).map(ms).collect()
        };
        out.insert("crashes".into(), self.crashes.len() as f64);
        stats(out, "first_detection_ms", pick(|c| c.first_suspect));
        let periods = self
            .crashes
            .iter()
            .filter_map(|c| c.first_pick_periods)
            .map(|r| r as f64)
            .collect();
        stats(out, "first_detection_periods", periods);
        stats(out, "first_dead_ms", pick(|c| c.first_dead));
        stats(out, "full_dissemination_ms", pick(|c| c.full));
        out.insert("false_positive_dead".into(), self.false_dead.len() as f64);
        let healthy = self
            .false_dead
            .iter()
            .filter(|f| {
                !self.unhealthy_near(f.observer, f.at_ms) && !self.unhealthy_near(f.target, f.at_ms)
            })
            .count();
        out.insert("false_positive_dead_healthy".into(), healthy as f64);
        let about_healthy = self
            .false_dead
            .iter()
            .filter(|f| !self.unhealthy_near(f.target, f.at_ms))
            .count();
        out.insert(
            "false_positive_dead_about_healthy".into(),
            about_healthy as f64,
        );
        out.insert(
            "false_positive_dead_views".into(),
            self.false_dead_views as f64,
        );
        out.insert("false_positive_suspect".into(), self.false_suspect as f64);
        let mut up = self.up_total;
        for (i, &u) in self.up.iter().enumerate() {
            if u {
                up += self.last_now.saturating_sub(self.up_since[i]);
            }
        }
        let member_periods = ms(up) / self.probe_interval_ms;
        if member_periods > 0.0 {
            let (mut sent, mut bytes) = self.sent_closed;
            for &(m, b) in &self.sent_now {
                sent += m;
                bytes += b;
            }
            out.insert(
                "messages_per_member_per_period".into(),
                sent as f64 / member_periods,
            );
            out.insert(
                "bytes_per_member_per_period".into(),
                bytes as f64 / member_periods,
            );
            out.insert(
                "false_positive_suspect_per_member_period".into(),
                self.false_suspect as f64 / member_periods,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::swim_permits;
    use crate::gossip::member::{overrides, Member, MemberState, Update};
    use std::time::Duration;

    const STATES: [MemberState; 4] = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];

    /// SWIM §4.2: a refutation (alive at a higher incarnation) beats a suspicion, a
    /// suspicion beats alive at the same incarnation, and a suspicion is not undone
    /// by alive at the same incarnation.
    #[test]
    fn swim_4_2_override_rules() {
        use MemberState::*;
        assert!(swim_permits((3, Suspect), (4, Alive)));
        assert!(!swim_permits((3, Suspect), (3, Alive)));
        assert!(swim_permits((3, Alive), (3, Suspect)));
        assert!(!swim_permits((3, Alive), (2, Suspect)));
        assert!(swim_permits((3, Suspect), (3, Dead)));
        assert!(!swim_permits((3, Dead), (3, Suspect)));
        assert!(!swim_permits((4, Alive), (3, Dead)), "a stale death rumour");
        assert!(swim_permits((3, Dead), (4, Alive)), "a rejoin");
    }

    /// The protocol's precedence (`overrides`, an order on incarnation and rank)
    /// agrees with the table written from the paper, for every pair of records.
    #[test]
    fn the_protocol_order_is_the_papers_table() {
        for old_state in STATES {
            for new_state in STATES {
                for j in 0..4 {
                    for i in 0..4 {
                        let current = Member {
                            state: old_state,
                            incarnation: j,
                            meta: None,
                            changed_at: Duration::ZERO,
                        };
                        let update = Update {
                            node: 0,
                            incarnation: i,
                            state: new_state,
                            from: 1,
                            meta: None,
                        };
                        assert_eq!(
                            overrides(&update, Some(&current)),
                            swim_permits((j, old_state), (i, new_state)),
                            "{new_state:?}({i}) over {old_state:?}({j})"
                        );
                    }
                }
            }
        }
    }
}

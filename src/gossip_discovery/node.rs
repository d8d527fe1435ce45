//! A node of a gossip-only discovery run: a SWIM member ([`SwimProcess`], nested
//! the way an etcd member nests Raft) plus its role's application part. An
//! instance answers calls as its health says; a caller takes the providers of the
//! service that its own membership view holds alive or suspect
//! ([`SwimProcess::providers`]) as its endpoint set after every step, and calls
//! them with the shared call logic ([`Calls`]).
//!
//! Health lives outside SWIM: a `service-unhealthy` or `service-hang` instance
//! still acks every probe, so gossip keeps it in every view (memberlist and Serf
//! check the node, not the service; Consul adds its own checks on top for that).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::config::{GossipDiscoveryConfig, NodeRole};
use crate::discovery::calls::{CallAction, CallDone, Calls};
use crate::etcd::instance::Health;
use crate::fingerprint::{tag, Fingerprint, Sink};
use crate::gossip::{SwimBugs, SwimMessage, SwimProcess, SwimTimer};
use crate::process::{Context, NodeId, Process, RequestId, ServiceFault, SyncError, SyncId};

/// What the nodes of a gossip-only discovery run send each other.
#[derive(Clone, Debug)]
pub enum GossipMessage {
    /// SWIM's own traffic: probes, gossip, push-pull.
    Swim(SwimMessage),
    /// A caller calls an instance.
    Call {
        /// The call attempt's id, the caller's.
        id: u64,
    },
    /// The instance's answer: ok or an error.
    Answer {
        /// The call attempt's id.
        id: u64,
        /// Whether it succeeded.
        ok: bool,
    },
}

impl Fingerprint for GossipMessage {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            GossipMessage::Swim(m) => m.fingerprint(out),
            GossipMessage::Call { id } => {
                tag(out, 0x6D15_0001);
                id.fingerprint(out);
            }
            GossipMessage::Answer { id, ok } => {
                tag(out, 0x6D15_0002);
                id.fingerprint(out);
                ok.fingerprint(out);
            }
        }
    }
}

/// The timers of a gossip-only discovery run's nodes.
#[derive(Clone, Debug)]
pub enum GossipTimer {
    /// The SWIM member's.
    Swim(SwimTimer),
    /// A caller's next call.
    Call,
    /// A caller's call attempt `id` timed out.
    CallTimeout(u64),
}

/// A caller's part: its calls and what changed in the last step.
#[derive(Clone, Debug)]
pub struct CallerPart {
    service: String,
    calls: Calls,
    call_interval_ms: u64,
    changed_in_step: bool,
}

/// A node of a gossip-only discovery run.
pub struct GossipNode {
    swim: SwimProcess,
    role: NodeRole,
    /// How the instance answers calls (callers ignore it).
    health: Health,
    caller: Option<CallerPart>,
}

type Ctx<'a> = Context<'a, GossipNode>;

impl GossipNode {
    /// Node `id` of a cluster of `nodes` under `cfg`, with SWIM's `bugs`.
    pub fn new(cfg: &GossipDiscoveryConfig, bugs: SwimBugs, nodes: usize, id: NodeId) -> Self {
        let swim = SwimProcess::new(Arc::new(cfg.swim_for(nodes)), id, nodes, bugs);
        let role = cfg.role(id);
        let caller = (role == NodeRole::Caller).then(|| {
            let profile = cfg.caller_profile();
            let d = &cfg.discovery;
            let attempt_timeout_ms = d
                .call_timeout_ms
                .or(profile.connect_timeout_ms)
                .unwrap_or(1_000);
            CallerPart {
                service: d.service.clone(),
                calls: Calls::new(profile, attempt_timeout_ms),
                call_interval_ms: d.call_interval_ms,
                changed_in_step: false,
            }
        });
        GossipNode {
            swim,
            role,
            health: Health::Healthy,
            caller,
        }
    }

    /// The SWIM member.
    pub fn swim(&self) -> &SwimProcess {
        &self.swim
    }

    /// The node's role.
    pub fn role(&self) -> NodeRole {
        self.role
    }

    /// An instance's answer to a call now: `Some(ok)`, or `None` while it hangs.
    pub fn answer(&self) -> Option<bool> {
        match self.health {
            Health::Healthy => Some(true),
            Health::Unhealthy => Some(false),
            Health::Hung => None,
        }
    }

    /// A caller's endpoint set (empty for an instance).
    pub fn endpoints(&self) -> BTreeSet<NodeId> {
        self.caller
            .as_ref()
            .map(|c| c.calls.endpoints().clone())
            .unwrap_or_default()
    }

    /// Whether a caller's endpoint set changed in the last step.
    pub fn changed_in_step(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| c.changed_in_step)
    }

    /// A caller's attempts sent in the last step: (attempt id, instance).
    pub fn started_in_step(&self) -> &[(u64, NodeId)] {
        self.caller
            .as_ref()
            .map_or(&[], |c| c.calls.started_in_step())
    }

    /// A caller's attempts that ended in the last step.
    pub fn calls_in_step(&self) -> &[CallDone] {
        self.caller.as_ref().map_or(&[], |c| c.calls.done_in_step())
    }

    fn begin(&mut self) {
        if let Some(c) = &mut self.caller {
            c.changed_in_step = false;
            c.calls.begin();
        }
    }

    /// Runs one SWIM handler on a nested context and hands its effects on.
    fn step_swim(
        &mut self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut SwimProcess, &mut Context<'_, SwimProcess>),
    ) {
        let swim = &mut self.swim;
        let ((), effects) = ctx.nested(|c| f(swim, c));
        for effect in effects {
            let lifted =
                effect.lift::<GossipNode>(GossipMessage::Swim, GossipTimer::Swim, |_, _| {
                    unreachable!("a SWIM member has no clients")
                });
            if let Some(e) = lifted {
                ctx.emit(e);
            }
        }
    }

    /// Ends every step: a caller's endpoint set becomes what its view offers now.
    fn end(&mut self, ctx: &mut Ctx<'_>) {
        let Some(c) = &mut self.caller else {
            return;
        };
        let set: BTreeSet<NodeId> = self.swim.providers(&c.service).collect();
        if c.calls.set_endpoints(&set, ctx.rng()) {
            c.changed_in_step = true;
        }
    }

    fn act(ctx: &mut Ctx<'_>, actions: Vec<CallAction>) {
        for a in actions {
            match a {
                CallAction::Call { to, id } => ctx.send(to, GossipMessage::Call { id }),
                CallAction::Timeout { id, after } => {
                    ctx.set_timer(after, GossipTimer::CallTimeout(id));
                }
            }
        }
    }
}

impl Process for GossipNode {
    type Message = GossipMessage;
    type Timer = GossipTimer;
    type Request = ();
    type Response = ();
    type Record = u64;

    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.begin();
        self.step_swim(ctx, |s, c| s.on_start(c));
        if let Some(c) = &self.caller {
            let first = Duration::from_millis(c.call_interval_ms.max(1));
            ctx.set_timer(first, GossipTimer::Call);
        }
        self.end(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: GossipMessage) {
        self.begin();
        let now = ctx.now();
        match msg {
            GossipMessage::Swim(m) => self.step_swim(ctx, |s, c| s.on_message(c, from, m)),
            GossipMessage::Call { id } => {
                if self.role == NodeRole::Instance {
                    if let Some(ok) = self.answer() {
                        ctx.send(from, GossipMessage::Answer { id, ok });
                    }
                }
            }
            GossipMessage::Answer { id, ok } => {
                if let Some(c) = &mut self.caller {
                    let actions = c.calls.answered(from, id, ok, now, ctx.rng());
                    Self::act(ctx, actions);
                }
            }
        }
        self.end(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: GossipTimer) {
        self.begin();
        let now = ctx.now();
        match timer {
            GossipTimer::Swim(t) => self.step_swim(ctx, |s, c| s.on_timer(c, t)),
            GossipTimer::Call => {
                // The set as the view holds it at this very call.
                self.end(ctx);
                let c = self.caller.as_mut().expect("only callers set call timers");
                ctx.set_timer(
                    Duration::from_millis(c.call_interval_ms.max(1)),
                    GossipTimer::Call,
                );
                let actions = c.calls.start(now, ctx.rng());
                Self::act(ctx, actions);
            }
            GossipTimer::CallTimeout(id) => {
                let c = self.caller.as_mut().expect("only callers set call timers");
                let actions = c.calls.timed_out(id, now, ctx.rng());
                Self::act(ctx, actions);
            }
        }
        self.end(ctx);
    }

    fn on_request(&mut self, _ctx: &mut Ctx<'_>, _id: RequestId, _req: ()) {}

    fn on_synced(&mut self, ctx: &mut Ctx<'_>, sync: SyncId, result: Result<(), SyncError>) {
        self.begin();
        self.step_swim(ctx, |s, c| s.on_synced(c, sync, result));
        self.end(ctx);
    }

    fn message_bytes(msg: &GossipMessage) -> usize {
        match msg {
            GossipMessage::Swim(m) => SwimProcess::message_bytes(m),
            _ => 64,
        }
    }

    /// SWIM's classes (`probe`, `gossip`, `push-pull`) and `call`.
    fn message_class(msg: &GossipMessage) -> &'static str {
        match msg {
            GossipMessage::Swim(m) => SwimProcess::message_class(m),
            GossipMessage::Call { .. } | GossipMessage::Answer { .. } => "call",
        }
    }

    fn message_classes() -> &'static [&'static str] {
        &["probe", "gossip", "push-pull", "call"]
    }

    /// An instance's application fails its calls or hangs; its SWIM member goes on
    /// acking probes, so no view drops it.
    fn on_service_fault(&mut self, _ctx: &mut Ctx<'_>, fault: ServiceFault, active: bool) {
        self.begin();
        if self.role != NodeRole::Instance {
            return;
        }
        self.health = match (fault, active) {
            (_, false) => Health::Healthy,
            (ServiceFault::Unhealthy, true) => Health::Unhealthy,
            (ServiceFault::Hang, true) => Health::Hung,
        };
    }

    fn serves_application() -> bool {
        true
    }
}

//! Bring your own protocol: a replicated counter (a G-counter CRDT), written against
//! faultline's public API and run under faults.
//!
//!     cargo run --release --example counter             # seeds 0..50
//!     cargo run --release --example counter -- 7..8     # one seed
//!
//! The pieces a protocol needs:
//! 1. a [`Process`]: pure handlers that read the context and push effects;
//! 2. a [`Client`]: simulated users that record a history;
//! 3. [`Checker`]s: safety after every step, liveness after the final heal;
//! 4. a [`System`] tying them to a scenario file (`examples/counter.toml`).
//!
//! Each node counts the increments it accepted and learns the others' counts by
//! anti-entropy: every `gossip_ms` it sends its vector to a random peer, which keeps
//! the pointwise maximum. An increment is acknowledged only once its write is durable:
//! replies (and, simply, every message) wait in a [`DurableOutbox`] for the sync of
//! the writes before them, which the disk completes asynchronously.

use std::time::Duration;

use faultline::check::{Checker, ClusterView, Metrics};
use faultline::client::{Client, ClientContext};
use faultline::{
    impl_fingerprint, ClientId, Context, DurableOutbox, NodeId, OpType, Process, RequestId, Setup,
    SyncError, SyncId, System,
};
use serde::{Deserialize, Serialize};

/// The `[cluster.config]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub gossip_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { gossip_ms: 50 }
    }
}

#[derive(Clone, Debug)]
pub enum Request {
    Increment,
}

#[derive(Clone, Debug)]
pub enum Response {
    Ok,
}

// Messages, requests, responses and history operations feed the run's fingerprint
// (the trace hash) through a portable byte encoding; each enum variant gets a tag.
impl_fingerprint!(enum Request { 0 => Increment });
impl_fingerprint!(enum Response { 0 => Ok });

pub struct CounterNode {
    config: Config,
    /// `counts[i]`: increments node `i` accepted, as far as this node knows.
    counts: Vec<u64>,
    /// Messages and replies, each released once the writes before it are durable.
    out: DurableOutbox<Vec<u64>, Response>,
}

impl Process for CounterNode {
    type Message = Vec<u64>;
    type Timer = ();
    type Request = Request;
    type Response = Response;
    type Record = Vec<u64>;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.counts = ctx
            .storage()
            .get("counts")
            .cloned()
            .unwrap_or_else(|| vec![0; ctx.nodes()]);
        ctx.set_timer(Duration::from_millis(self.config.gossip_ms), ());
        self.out.flush(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _from: NodeId, theirs: Vec<u64>) {
        for (mine, theirs) in self.counts.iter_mut().zip(theirs) {
            *mine = (*mine).max(theirs);
        }
        // Synced with the step: what others counted could also be learned again.
        ctx.write("counts", self.counts.clone());
        self.out.flush(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        // A random peer other than this node (validation ensures there is one).
        let (n, me) = (ctx.nodes(), ctx.id());
        let peer = faultline::rng::index(ctx.rng(), 0..n - 1);
        self.out.send(
            if peer >= me { peer + 1 } else { peer },
            self.counts.clone(),
        );
        ctx.set_timer(Duration::from_millis(self.config.gossip_ms), ());
        self.out.flush(ctx);
    }

    fn on_request(
        &mut self,
        ctx: &mut Context<'_, Self>,
        id: RequestId,
        Request::Increment: Request,
    ) {
        self.counts[ctx.id()] += 1;
        ctx.write("counts", self.counts.clone());
        // The reply leaves once the write is durable: an acknowledged increment
        // survives a crash.
        self.out.reply(id, Response::Ok);
        self.out.flush(ctx);
    }

    fn on_synced(
        &mut self,
        ctx: &mut Context<'_, Self>,
        sync: SyncId,
        result: Result<(), SyncError>,
    ) {
        // Releases what waited for the sync; after an fsync error the disk no longer
        // holds what we counted, so the node stops (crash-stop) and recovers.
        self.out.on_synced(ctx, sync, result);
    }
}

/// One increment at a time, to a random node; a reply not back in 200 ms is `info`.
#[derive(Default)]
pub struct Incrementer {
    stopped: bool,
    waiting: Option<RequestId>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Op {
    Increment,
}

impl_fingerprint!(enum Op { 0 => Increment });

#[derive(Clone, Debug)]
pub enum ClientTimer {
    Next,
    Timeout(RequestId),
}

impl Client<CounterNode> for Incrementer {
    type Timer = ClientTimer;
    type Op = Op;

    fn on_start(&mut self, ctx: &mut ClientContext<'_, CounterNode, Self>) {
        ctx.set_timer(Duration::from_millis(10), ClientTimer::Next);
    }

    fn on_response(
        &mut self,
        ctx: &mut ClientContext<'_, CounterNode, Self>,
        _: NodeId,
        id: RequestId,
        _: Response,
    ) {
        if self.waiting == Some(id) {
            self.waiting = None;
            ctx.complete(OpType::Ok, Op::Increment);
        }
    }

    fn on_timer(&mut self, ctx: &mut ClientContext<'_, CounterNode, Self>, timer: ClientTimer) {
        match timer {
            ClientTimer::Timeout(id) if self.waiting == Some(id) => {
                self.waiting = None;
                ctx.complete(OpType::Info, Op::Increment);
            }
            ClientTimer::Timeout(_) => {}
            ClientTimer::Next if self.stopped => {}
            ClientTimer::Next => {
                if self.waiting.is_none() {
                    let nodes = ctx.nodes();
                    let node = faultline::rng::index(ctx.rng(), 0..nodes);
                    ctx.invoke(Op::Increment);
                    let id = ctx.request(node, Request::Increment);
                    self.waiting = Some(id);
                    ctx.set_timer(Duration::from_millis(200), ClientTimer::Timeout(id));
                }
                ctx.set_timer(Duration::from_millis(20), ClientTimer::Next);
            }
        }
    }

    fn on_quiesce(&mut self, _: &mut ClientContext<'_, CounterNode, Self>) {
        self.stopped = true;
    }

    fn pending(&self) -> usize {
        usize::from(self.waiting.is_some())
    }
}

/// Safety: nobody believes node `i` counted more than node `i` ever did, and node
/// `i`'s own count never goes back (not even across a crash). Liveness: after the
/// heal every node holds the same counts.
#[derive(Default)]
pub struct CounterChecker {
    own_max: Vec<u64>,
}

impl Checker<CounterNode> for CounterChecker {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, CounterNode>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(p) = view.node(node) else {
            return Ok(());
        };
        if p.counts.is_empty() {
            return Ok(()); // not started yet
        }
        self.own_max.resize(view.nodes.len(), 0);
        if p.counts[node] < self.own_max[node] {
            return Err(format!(
                "node {node}'s own count went back from {} to {}",
                self.own_max[node], p.counts[node]
            ));
        }
        self.own_max[node] = p.counts[node];
        for (i, &count) in p.counts.iter().enumerate() {
            if count > self.own_max[i] {
                return Err(format!(
                    "node {node} believes node {i} counted {count}, but it counted {}",
                    self.own_max[i]
                ));
            }
        }
        Ok(())
    }

    fn settled(&mut self, view: &ClusterView<'_, CounterNode>) -> Result<(), String> {
        let mut up = view.up();
        let Some((first, p)) = up.next() else {
            return Ok(());
        };
        match up.find(|(_, q)| q.counts != p.counts) {
            Some((other, q)) => Err(format!(
                "node {first} has {:?}, node {other} has {:?}",
                p.counts, q.counts
            )),
            None => Ok(()),
        }
    }

    fn metrics(&self, out: &mut Metrics) {
        out.insert(
            "increments_counted".into(),
            self.own_max.iter().sum::<u64>() as f64,
        );
    }
}

pub struct Counter;

impl System for Counter {
    const NAME: &'static str = "counter";
    type Process = CounterNode;
    type Client = Incrementer;
    type Config = Config;
    type Workload = ();

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        if setup.nodes < 2 {
            return Err((
                "cluster.nodes".into(),
                "a replicated counter needs at least 2 nodes".into(),
            ));
        }
        match setup.config.gossip_ms {
            0 => Err((
                "cluster.config.gossip_ms".into(),
                "must be at least 1".into(),
            )),
            _ => Ok(()),
        }
    }

    fn process(setup: &Setup<Self>, _: NodeId) -> CounterNode {
        CounterNode {
            config: setup.config.clone(),
            counts: Vec::new(),
            out: DurableOutbox::default(),
        }
    }

    fn clients(_: &Setup<Self>) -> usize {
        2
    }

    fn client(_: &Setup<Self>, _: ClientId) -> Incrementer {
        Incrementer::default()
    }

    fn checkers(_: &Setup<Self>) -> Vec<Box<dyn Checker<CounterNode>>> {
        vec![Box::new(CounterChecker::default())]
    }
}

/// The scenario file beside this example.
pub const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/counter.toml");

#[allow(dead_code)] // also compiled into tests/example_counter.rs, which has its own main
fn main() {
    let seeds = std::env::args().nth(1).unwrap_or_else(|| "0..50".into());
    let seeds = faultline::testing::parse_seed_range(&seeds).unwrap_or_else(|e| panic!("{e}"));
    let summary = faultline::testing::check_seeds::<Counter>(SCENARIO, seeds);
    println!(
        "{}: {} seeds passed, {:.1} s simulated",
        summary.scenario,
        summary.passed,
        summary.sim_ms / 1e3
    );
}

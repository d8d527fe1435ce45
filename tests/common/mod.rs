//! A probe protocol for testing the simulator itself: every node pings every peer on
//! a timer and counts what arrives; a checker turns what nodes saw into metrics.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use faultline::check::{Checker, ClusterView, Metrics};
use faultline::run::{run, RunRequest, Summary};
use faultline::scenario::Scenario;
use faultline::{Context, NoClient, NodeId, Process, RequestId, Setup, SyncError, SyncId, System};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Every node pings every peer this often (local clock); 0 never pings.
    pub ping_ms: u64,
    /// A one-shot timer each node sets at start (local clock).
    pub tick_ms: u64,
    /// Unsynced writes made at every start.
    pub scratch_writes: usize,
    /// A deliberate determinism bug: the ping interval depends on a process-global
    /// counter, so the same seed run twice in one process behaves differently.
    pub leak_static: bool,
    /// A ping handled at or after the tick's deadline cancels the tick: a timer that
    /// is due but not yet run must then never run.
    pub cancel_due_tick: bool,
}

static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            ping_ms: 10,
            tick_ms: 1_000,
            scratch_writes: 1,
            leak_static: false,
            cancel_due_tick: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Ping {
    /// The sender's local time, in ns.
    pub sent_ns: u64,
    /// The sender's ping counter (per incarnation): its parity is the message class.
    pub seq: u64,
}

faultline::impl_fingerprint!(struct Ping { sent_ns, seq });

#[derive(Clone, Debug)]
pub enum ProbeTimer {
    Ping,
    Tick,
}

pub struct ProbeProcess {
    config: ProbeConfig,
    pub received: Vec<u64>,
    /// Pings handled more than 500 ms after they were sent.
    pub late: u64,
    pub boots: u64,
    pub scratch_recovered: usize,
    pub scratch_prefix_ok: bool,
    pub tick_local_ns: Option<u64>,
    /// A sync of this incarnation completed.
    pub synced: bool,
    pub sent: u64,
    /// Per sender: the latest `sent_ns` handled.
    pub last_sent_ns: Vec<u64>,
    /// Pings handled after one sent later by the same sender.
    pub out_of_order: u64,
    /// Least and most time from a ping's send to its handling (ns).
    pub delay_min_ns: Option<u64>,
    pub delay_max_ns: u64,
    pub tick: Option<faultline::TimerId>,
}

impl Process for ProbeProcess {
    type Message = Ping;
    type Timer = ProbeTimer;
    type Request = ();
    type Response = ();
    type Record = u64;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.received = vec![0; ctx.nodes()];
        self.last_sent_ns = vec![0; ctx.nodes()];
        self.boots = ctx.storage().get("boots").copied().unwrap_or(0) + 1;
        let scratch: Vec<u64> = ctx.storage().scan("scratch/").map(|(_, v)| *v).collect();
        self.scratch_recovered = scratch.len();
        // Writes reach the disk in order, so what survives is a prefix.
        self.scratch_prefix_ok = scratch.iter().enumerate().all(|(i, &v)| v == i as u64);
        for key in (0..self.scratch_recovered).map(|i| format!("scratch/{i:06}")) {
            ctx.remove(key);
        }
        ctx.write("boots", self.boots);
        ctx.sync();
        for i in 0..self.config.scratch_writes {
            ctx.write(format!("scratch/{i:06}"), i as u64);
        }
        if self.config.leak_static {
            let starts = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.config.ping_ms += starts % 7;
        }
        if self.config.ping_ms > 0 {
            ctx.set_timer(Duration::from_millis(self.config.ping_ms), ProbeTimer::Ping);
        }
        self.tick =
            Some(ctx.set_timer(Duration::from_millis(self.config.tick_ms), ProbeTimer::Tick));
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Ping) {
        self.received[from] += 1;
        let now = ctx.now().as_nanos() as u64;
        if now > msg.sent_ns + 500_000_000 {
            self.late += 1;
        }
        if msg.sent_ns < self.last_sent_ns[from] {
            self.out_of_order += 1;
        }
        self.last_sent_ns[from] = self.last_sent_ns[from].max(msg.sent_ns);
        let delay = now.saturating_sub(msg.sent_ns);
        self.delay_min_ns = Some(self.delay_min_ns.map_or(delay, |d| d.min(delay)));
        self.delay_max_ns = self.delay_max_ns.max(delay);
        if self.config.cancel_due_tick && now >= self.config.tick_ms * 1_000_000 {
            if let Some(tick) = self.tick.take() {
                ctx.cancel_timer(tick);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: ProbeTimer) {
        match timer {
            ProbeTimer::Ping => {
                self.sent += 1;
                ctx.broadcast(Ping {
                    sent_ns: ctx.now().as_nanos() as u64,
                    seq: self.sent,
                });
                ctx.set_timer(Duration::from_millis(self.config.ping_ms), ProbeTimer::Ping);
            }
            ProbeTimer::Tick => {
                self.tick = None;
                self.tick_local_ns = Some(ctx.wall_clock().as_nanos() as u64);
            }
        }
    }

    fn on_request(&mut self, _: &mut Context<'_, Self>, _: RequestId, _: ()) {}

    fn on_synced(&mut self, ctx: &mut Context<'_, Self>, _: SyncId, result: Result<(), SyncError>) {
        match result {
            Ok(()) => self.synced = true,
            Err(_) => ctx.abort("fsync failed"),
        }
    }

    fn message_class(msg: &Ping) -> &'static str {
        match msg.seq % 2 {
            0 => "even",
            _ => "odd",
        }
    }

    fn message_classes() -> &'static [&'static str] {
        &["even", "odd"]
    }
}

/// Records, per node, the largest figures it ever showed (they survive crashes),
/// and the true time at which each node's tick fired.
#[derive(Default)]
pub struct ProbeChecker {
    figures: BTreeMap<String, f64>,
}

/// How many probe checkers were dropped: each run's world, which owns them, must be
/// freed when the run ends.
pub static CHECKERS_DROPPED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

impl Drop for ProbeChecker {
    fn drop(&mut self) {
        CHECKERS_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ProbeChecker {
    fn max(&mut self, name: String, value: f64) {
        let slot = self.figures.entry(name).or_insert(value);
        *slot = slot.max(value);
    }
}

impl Checker<ProbeProcess> for ProbeChecker {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn after_step(
        &mut self,
        view: &ClusterView<'_, ProbeProcess>,
        node: NodeId,
    ) -> Result<(), String> {
        let Some(p) = view.node(node) else {
            return Ok(());
        };
        for (from, &count) in p.received.iter().enumerate() {
            self.max(format!("recv_{from}_to_{node}"), count as f64);
            if count > 0 {
                self.figures
                    .entry(format!("first_recv_ms_{from}_to_{node}"))
                    .or_insert_with(|| view.now.as_secs_f64() * 1e3);
            }
        }
        self.max(format!("out_of_order_{node}"), p.out_of_order as f64);
        self.max(format!("delay_max_ms_{node}"), p.delay_max_ns as f64 / 1e6);
        if let Some(min) = p.delay_min_ns {
            let key = format!("delay_min_ms_{node}");
            let min = min as f64 / 1e6;
            let slot = self.figures.entry(key).or_insert(min);
            *slot = slot.min(min);
        }
        self.max(format!("late_{node}"), p.late as f64);
        self.max(format!("boots_{node}"), p.boots as f64);
        if p.boots > 1 {
            self.figures.insert(
                format!("scratch_recovered_{node}"),
                p.scratch_recovered as f64,
            );
            self.figures.insert(
                format!("scratch_prefix_ok_{node}"),
                f64::from(u8::from(p.scratch_prefix_ok)),
            );
        }
        if p.synced {
            self.figures
                .entry(format!("synced_true_ms_{node}"))
                .or_insert_with(|| view.now.as_secs_f64() * 1e3);
        }
        if let Some(local) = p.tick_local_ns {
            let key = format!("tick_true_ms_{node}");
            if !self.figures.contains_key(&key) {
                self.figures.insert(key, view.now.as_secs_f64() * 1e3);
                self.figures
                    .insert(format!("tick_local_ms_{node}"), local as f64 / 1e6);
            }
        }
        Ok(())
    }

    fn metrics(&self, out: &mut Metrics) {
        out.extend(self.figures.iter().map(|(k, v)| (k.clone(), *v)));
    }
}

pub struct Probe;

impl System for Probe {
    const NAME: &'static str = "probe";
    type Process = ProbeProcess;
    type Client = NoClient;
    type Config = ProbeConfig;
    type Workload = ();

    fn process(setup: &Setup<Self>, _id: NodeId) -> ProbeProcess {
        ProbeProcess {
            config: setup.config.clone(),
            received: Vec::new(),
            late: 0,
            boots: 0,
            scratch_recovered: 0,
            scratch_prefix_ok: true,
            tick_local_ns: None,
            synced: false,
            sent: 0,
            last_sent_ns: Vec::new(),
            out_of_order: 0,
            delay_min_ns: None,
            delay_max_ns: 0,
            tick: None,
        }
    }

    fn clients(_: &Setup<Self>) -> usize {
        0
    }

    fn client(_: &Setup<Self>, _: usize) -> NoClient {
        NoClient
    }

    fn checkers(_: &Setup<Self>) -> Vec<Box<dyn Checker<ProbeProcess>>> {
        vec![Box::new(ProbeChecker::default())]
    }
}

/// A probe scenario with `body` appended (faults, network, config tables).
pub fn probe_scenario(nodes: usize, duration_ms: u64, body: &str) -> Scenario {
    let text = format!(
        "name = \"probe\"\ndescription = \"simulator probe\"\nduration_ms = {duration_ms}\n\
         [cluster]\nprotocol = \"probe\"\nnodes = {nodes}\n{body}"
    );
    Scenario::parse("probe.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one seed and returns its metrics.
pub fn probe_run(scenario: &Scenario, seed: u64) -> (Summary, Metrics) {
    let request = RunRequest {
        seeds: vec![seed],
        ..RunRequest::default()
    };
    let summary = run::<Probe>(scenario, &request).unwrap_or_else(|e| panic!("{e}"));
    let metrics = summary.runs[0].metrics.clone();
    (summary, metrics)
}

pub fn metric(m: &Metrics, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", m.keys().collect::<Vec<_>>()))
}

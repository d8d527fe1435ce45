//! A protocol written outside faultline: each node ticks a durable counter, and the
//! count it had made durable must survive a crash.

use std::time::Duration;

use faultline::check::{Checker, ClusterView};
use faultline::{Bug, Context, NodeId, NoClient, Process, RequestId, Setup, SyncError, SyncId, System};

#[derive(Default)]
pub struct Ticker {
    forget: bool,
    started: bool,
    count: u64,
    /// The count each sync in flight covers.
    syncing: Vec<(SyncId, u64)>,
    /// The count the last completed sync made durable.
    pub durable: u64,
}

impl Ticker {
    pub fn count(&self) -> Option<u64> {
        self.started.then_some(self.count)
    }
}

impl Process for Ticker {
    type Message = ();
    type Timer = ();
    type Request = ();
    type Response = ();
    type Record = u64;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.forget {
            self.count = ctx.storage().get("count").copied().unwrap_or(0);
        }
        self.durable = self.count;
        self.started = true;
        ctx.set_timer(Duration::from_millis(10), ());
    }

    fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: ()) {}

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        self.count += 1;
        ctx.write("count", self.count);
        let sync = ctx.sync();
        self.syncing.push((sync, self.count));
        ctx.set_timer(Duration::from_millis(10), ());
    }

    fn on_request(&mut self, _: &mut Context<'_, Self>, _: RequestId, _: ()) {}

    fn on_synced(&mut self, ctx: &mut Context<'_, Self>, sync: SyncId, result: Result<(), SyncError>) {
        if let Err(error) = result {
            return ctx.abort(format!("sync failed: {error:?}"));
        }
        if let Some(i) = self.syncing.iter().position(|(id, _)| *id == sync) {
            self.durable = self.durable.max(self.syncing.remove(i).1);
        }
    }
}

/// A node's count never falls below what it had made durable.
#[derive(Default)]
pub struct DurableCount {
    durable: Vec<u64>,
}

impl Checker<Ticker> for DurableCount {
    fn name(&self) -> &'static str {
        "durable-count"
    }

    fn after_step(&mut self, view: &ClusterView<'_, Ticker>, node: NodeId) -> Result<(), String> {
        self.durable.resize(view.nodes.len(), 0);
        let Some(count) = view.node(node).and_then(Ticker::count) else {
            return Ok(());
        };
        if count < self.durable[node] {
            return Err(format!("node {node} counts {count}, below the {} it had made durable", self.durable[node]));
        }
        self.durable[node] = self.durable[node].max(view.node(node).map_or(0, |t| t.durable));
        Ok(())
    }

    fn settled(&mut self, _: &ClusterView<'_, Ticker>) -> Result<(), String> {
        Ok(())
    }
}

pub struct Tickers;

impl System for Tickers {
    const NAME: &'static str = "ticker";
    type Process = Ticker;
    type Client = NoClient;
    type Config = ();
    type Workload = ();

    fn process(setup: &Setup<Self>, _: NodeId) -> Ticker {
        Ticker { forget: setup.bug("forget-on-restart"), ..Ticker::default() }
    }

    fn clients(_: &Setup<Self>) -> usize {
        0
    }

    fn client(_: &Setup<Self>, _: faultline::ClientId) -> NoClient {
        NoClient
    }

    fn checkers(_: &Setup<Self>) -> Vec<Box<dyn Checker<Ticker>>> {
        vec![Box::new(DurableCount::default())]
    }

    fn bugs() -> &'static [Bug] {
        &[Bug {
            name: "forget-on-restart",
            scenario: "ticker-forget",
            description: "a node restarts from zero instead of its disk",
        }]
    }
}

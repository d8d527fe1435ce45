//! Per-message cost of faultline's network layer against raw madsim.
//!
//! Both sides run the same two-node ping-pong for `ROUND_TRIPS` round trips on a fresh
//! thread with a fresh runtime: once through `madsim::net::Endpoint`, once as a
//! faultline process with faults configured but inactive (zero loss, duplication and
//! reordering; a partition scheduled after the exchange ends). The ratio of the two
//! times is the overhead per message. Figures: results/bench/core.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::{Context, NoClient, NodeId, Process, RequestId, Setup, System};
use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};

const ROUND_TRIPS: u64 = 1_000;

fn raw_madsim() {
    std::thread::spawn(|| {
        let runtime = Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(async {
            let handle = Handle::current();
            let a = handle
                .create_node()
                .name("a")
                .ip("10.0.0.1".parse().unwrap())
                .build();
            let b = handle
                .create_node()
                .name("b")
                .ip("10.0.0.2".parse().unwrap())
                .build();
            let server = b.spawn(async {
                let ep = Endpoint::bind("10.0.0.2:1").await.unwrap();
                let mut buf = [0u8; 8];
                for _ in 0..ROUND_TRIPS {
                    let (len, from) = ep.recv_from(0, &mut buf).await.unwrap();
                    ep.send_to(from, 0, &buf[..len]).await.unwrap();
                }
            });
            let client = a.spawn(async {
                let ep = Endpoint::bind("10.0.0.1:1").await.unwrap();
                madsim::time::sleep(Duration::from_millis(10)).await; // the server binds first
                let mut buf = [0u8; 8];
                for i in 0..ROUND_TRIPS {
                    ep.send_to("10.0.0.2:1", 0, &i.to_le_bytes()).await.unwrap();
                    ep.recv_from(0, &mut buf).await.unwrap();
                }
            });
            client.await.unwrap();
            server.await.unwrap();
        });
    })
    .join()
    .unwrap();
}

/// Node 0 pings, node 1 answers, `ROUND_TRIPS` times.
struct PingPong;

#[derive(Clone, Debug)]
enum Msg {
    Ping(u64),
    Pong(u64),
}

faultline::impl_fingerprint!(enum Msg {
    0 => Ping(n),
    1 => Pong(n),
});

struct PingPongProcess;

impl Process for PingPongProcess {
    type Message = Msg;
    type Timer = ();
    type Request = ();
    type Response = ();
    type Record = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if ctx.id() == 0 {
            ctx.send(1, Msg::Ping(0));
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Ping(i) => ctx.send(from, Msg::Pong(i)),
            Msg::Pong(i) if i + 1 < ROUND_TRIPS => ctx.send(from, Msg::Ping(i + 1)),
            Msg::Pong(_) => {}
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
    fn on_request(&mut self, _: &mut Context<'_, Self>, _: RequestId, _: ()) {}
}

impl System for PingPong {
    const NAME: &'static str = "pingpong";
    type Process = PingPongProcess;
    type Client = NoClient;
    type Config = ();
    type Workload = ();

    fn process(_: &Setup<Self>, _: NodeId) -> PingPongProcess {
        PingPongProcess
    }
    fn clients(_: &Setup<Self>) -> usize {
        0
    }
    fn client(_: &Setup<Self>, _: usize) -> NoClient {
        NoClient
    }
}

/// 1000 round trips of 1-10 ms each take at most 20 s; the partition comes after.
const SCENARIO: &str = r#"
name = "pingpong"
description = "two nodes, one message in flight"
duration_ms = 30000
[cluster]
protocol = "pingpong"
nodes = 2
[network]
latency = { dist = "uniform", min_ms = 1, max_ms = 10 }
loss = 0.0
duplicate = 0.0
reorder = 0.0
[[faults]]
kind = "partition"
at_ms = 29000
heal_ms = 29500
groups = [[0], [1]]
"#;

fn bench(c: &mut Criterion) {
    let scenario = Scenario::parse("pingpong.toml", SCENARIO).unwrap();
    let setup = Arc::new(scenario.setup::<PingPong>(&[]).unwrap());
    let schedule = scenario.schedule(1, 0);
    let outcome = run_seed::<PingPong>(&scenario, &setup, &schedule, false);
    let delivered = outcome.metrics["messages_delivered"];
    assert_eq!(
        delivered,
        2.0 * ROUND_TRIPS as f64,
        "every ping and pong arrives"
    );

    let mut group = c.benchmark_group("ping_pong_1000_round_trips");
    group.sample_size(30);
    group.bench_function("raw_madsim_endpoint", |b| b.iter(raw_madsim));
    group.bench_function("faultline_network", |b| {
        b.iter(|| run_seed::<PingPong>(&scenario, &setup, &schedule, false))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Raft replicating a state machine other than the KV store: the algorithm, client
//! sessions, snapshots and the invariant checkers work for any [`StateMachine`].

use std::time::Duration;

use super::net::Net;
use crate::client::{Client, ClientContext};
use crate::process::{NodeId, RequestId};
use crate::raft::{Bugs, RaftConfig, RaftProcess, RequestOp, Response, StateMachine};

/// A counter whose every command's output depends on the state (the new total), and
/// which checks the apply contract: indexes strictly increase within an incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counter {
    total: i64,
    last_index: u64,
}

/// Add `0` to the counter.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Add(i64);
crate::impl_fingerprint!(struct Add(0));

/// Read the total.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Total;
crate::impl_fingerprint!(struct Total());

impl StateMachine for Counter {
    type Command = Add;
    type Output = i64;
    type Query = Total;
    type Answer = i64;
    type Snapshot = (i64, u64);

    fn apply(&mut self, index: u64, command: &Add) -> i64 {
        assert!(index > self.last_index, "apply in log order, once");
        self.last_index = index;
        self.total += command.0;
        self.total
    }

    fn read(&self, applied_index: u64, _query: &Total) -> i64 {
        assert!(applied_index >= self.last_index);
        self.total
    }

    fn snapshot(&self) -> (i64, u64) {
        (self.total, self.last_index)
    }

    fn restore(snapshot: &(i64, u64)) -> Counter {
        Counter {
            total: snapshot.0,
            last_index: snapshot.1,
        }
    }

    fn command_size_bytes(_command: &Add) -> usize {
        8
    }

    fn snapshot_size_bytes(_snapshot: &(i64, u64)) -> usize {
        16
    }
}

/// A cluster without simulated clients: the test sends requests itself.
pub(super) enum NoClients<S> {
    #[allow(dead_code)]
    Never(std::convert::Infallible, std::marker::PhantomData<S>),
}

impl<S: StateMachine> Client<RaftProcess<S>> for NoClients<S> {
    type Timer = ();
    type Op = ();
    fn on_start(&mut self, _: &mut ClientContext<'_, RaftProcess<S>, Self>) {
        unreachable!("no clients")
    }
    fn on_response(
        &mut self,
        _: &mut ClientContext<'_, RaftProcess<S>, Self>,
        _: NodeId,
        _: RequestId,
        _: Response<S>,
    ) {
        unreachable!("no clients")
    }
    fn on_timer(&mut self, _: &mut ClientContext<'_, RaftProcess<S>, Self>, _: ()) {
        unreachable!("no clients")
    }
    fn on_quiesce(&mut self, _: &mut ClientContext<'_, RaftProcess<S>, Self>) {
        unreachable!("no clients")
    }
    fn pending(&self) -> usize {
        unreachable!("no clients")
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_counter_replicates_with_sessions_snapshots_and_reads() {
    let cfg = RaftConfig {
        snapshot_threshold_entries: 4,
        ..RaftConfig::default()
    };
    let mut net: Net<Counter, NoClients<Counter>> = Net::build(3, cfg, Bugs::default(), 5);
    let l = net.elect();
    let f = (l + 1) % 3;
    net.isolate(f);
    let mut last = None;
    for n in 1..=10 {
        last = Some(net.request(l, RequestOp::Command(Add(n).into())));
        net.run_for(ms(5));
    }
    net.run_for(ms(100));
    let written = net.reply_to(last.expect("sent")).cloned();
    assert_eq!(
        written,
        Some(Response::Written {
            seq: 10,
            result: 55
        })
    );

    // A retry of the last command (same session seq) is answered, not applied again.
    let retry = net.request_with_seq(l, 10, RequestOp::Command(Add(10).into()));
    net.run_for(ms(100));
    let retried = net.reply_to(retry).cloned();
    assert_eq!(
        retried,
        Some(Response::Written {
            seq: 10,
            result: 55
        })
    );
    assert_eq!(net.node(l).state_machine().total, 55);

    // The isolated follower catches up through a snapshot of the counter.
    assert!(
        net.node(l).log().snapshot_index() >= 8,
        "the leader compacted"
    );
    net.heal();
    net.run_for(ms(500));
    assert_eq!(net.node(f).state_machine(), net.node(l).state_machine());
    assert_eq!(net.node(f).sessions(), net.node(l).sessions());
    assert!(
        net.node(f).log().snapshot_index() > 0,
        "via InstallSnapshot"
    );

    // A linearizable read (read_index) answers from the state machine.
    let read = net.request(l, RequestOp::Read(Total));
    net.run_for(ms(100));
    let answer = net.reply_to(read).cloned();
    assert!(
        matches!(answer, Some(Response::Value { value: 55, .. })),
        "{answer:?}"
    );

    // Recovery restores the counter from its snapshot.
    net.crash(f);
    net.start(f);
    net.run_for(ms(500));
    assert_eq!(net.node(f).state_machine().total, 55);
    assert_eq!(net.violation, None);
}

#[test]
fn the_etcd_store_replicates_and_reads_at_a_past_revision() {
    use crate::etcd::{EtcdCommand, EtcdQuery, EtcdStore, Op};
    let mut net: Net<EtcdStore, NoClients<EtcdStore>> =
        Net::build(3, RaftConfig::default(), Bugs::default(), 6);
    let l = net.elect();
    for v in ["1", "2"] {
        let put = EtcdCommand::Op(Op::Put {
            key: "k".into(),
            value: v.into(),
            lease: 0,
        });
        net.request(l, RequestOp::Command(put.into()));
        net.run_for(ms(50));
    }
    let read = |revision| EtcdQuery::Range {
        key: "k".into(),
        range_end: String::new(),
        revision,
    };
    let at_1 = net.request(l, RequestOp::Read(read(1)));
    net.run_for(ms(50));
    let value = match net.reply_to(at_1).cloned() {
        Some(Response::Value { value, .. }) => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value.revision, 2);
    assert_eq!(value.kvs.expect("readable")[0].value, "1");
    for n in 0..3 {
        assert_eq!(net.node(n).state_machine().revision(), 2, "node {n}");
    }
    assert_eq!(net.violation, None);
}

//! The watch against etcd's watch guarantees, judged by [`super::super::watch_check`].

use proptest::prelude::*;

use super::*;
use crate::etcd::watch_check::{
    self, EventLog, Guarantee, Opened, Range, Received, Segment, Stream, Violation,
};
use crate::etcd::{EtcdCommand, EventKind, Op};
use crate::raft::StateMachine;

const KEYS: [&str; 4] = ["a", "ab", "b", "c"];

fn put(key: &str, value: &str) -> EtcdCommand {
    EtcdCommand::put(key, value)
}

fn delete(key: &str, range_end: &str) -> EtcdCommand {
    EtcdCommand::delete_range(key, range_end)
}

/// Two puts in one revision.
fn txn(a: &str, b: &str, value: &str) -> EtcdCommand {
    let op = |k: &str| Op::Put {
        key: k.into(),
        value: value.into(),
        lease: 0,
    };
    EtcdCommand::Txn {
        compare: Vec::new(),
        success: vec![op(a), op(b)],
        failure: Vec::new(),
    }
}

/// A member: its store, applied up to some prefix of the committed commands, and its
/// watch server.
struct Member {
    store: EtcdStore,
    applied: usize,
    server: WatchServer,
}

/// A watcher: its client, the member it watches on, and what it received, as the
/// checker reads it.
struct Watcher {
    client: WatchClient,
    member: usize,
    stream: Stream,
}

/// Committed commands, members applying them (member 0 at once, the others when
/// told), watchers on members, and the log of every committed event.
struct Cluster {
    commands: Vec<EtcdCommand>,
    members: Vec<Member>,
    watchers: Vec<Watcher>,
    log: EventLog,
}

impl Cluster {
    fn new(members: usize, max_revisions: usize, bugs: WatchBugs) -> Self {
        Cluster {
            commands: Vec::new(),
            members: (0..members)
                .map(|_| Member {
                    store: EtcdStore::default(),
                    applied: 0,
                    server: WatchServer::new(max_revisions, bugs),
                })
                .collect(),
            watchers: Vec::new(),
            log: EventLog::new(),
        }
    }

    /// Commits `command`; member 0 applies it.
    fn commit(&mut self, command: EtcdCommand) {
        self.commands.push(command);
        self.catch_up(0, usize::MAX);
        self.log.record(&self.members[0].store);
    }

    /// Member `m` applies up to `n` more committed commands.
    fn catch_up(&mut self, m: usize, n: usize) {
        let member = &mut self.members[m];
        let to = self.commands.len().min(member.applied.saturating_add(n));
        for i in member.applied..to {
            member.store.apply(i as u64 + 1, &self.commands[i]);
        }
        member.applied = to;
    }

    /// A watcher of `[key, range_end)` from `start` on member `m`.
    fn watch(&mut self, key: &str, range_end: &str, start: u64, m: usize, bugs: WatchBugs) {
        let id = self.watchers.len() as u64;
        self.watchers.push(Watcher {
            client: WatchClient::new(key, range_end, start, bugs),
            member: m,
            stream: Stream {
                watcher: id,
                range: Range {
                    key: key.into(),
                    range_end: range_end.into(),
                },
                segments: Vec::new(),
            },
        });
        self.connect(id as usize);
    }

    /// Watcher `w` (re)creates its watch on its member.
    fn connect(&mut self, w: usize) {
        let watcher = &mut self.watchers[w];
        if watcher.client.state() != ClientState::Disconnected {
            return;
        }
        let request = watcher.client.request();
        let start_revision = request.start_revision;
        let member = &mut self.members[watcher.member];
        let created = member.server.create(&member.store, request);
        watcher.stream.segments.push(Segment {
            start_revision,
            opened: match created {
                Ok(c) => Opened::Created {
                    revision: c.revision,
                },
                Err(WatchError::Compacted { compact_revision }) => {
                    Opened::Compacted { compact_revision }
                }
            },
            responses: Vec::new(),
        });
        watcher.client.on_created(created);
    }

    /// Watcher `w`'s stream breaks; it resumes on member `m`.
    fn reconnect(&mut self, w: usize, m: usize) {
        let watcher = &mut self.watchers[w];
        if let ClientState::Watching(id) = watcher.client.state() {
            self.members[watcher.member].server.cancel(id);
        }
        watcher.client.on_disconnect();
        watcher.member = m;
        self.connect(w);
    }

    /// Member `m` sends its watches what they have not been sent, then progress
    /// notifications if `progress`.
    fn poll(&mut self, m: usize, progress: bool) {
        let member = &mut self.members[m];
        let mut responses = member.server.poll(&member.store);
        if progress {
            responses.extend(member.server.progress(&member.store));
        }
        for r in responses {
            let watcher = self
                .watchers
                .iter_mut()
                .find(|w| w.member == m && w.client.state() == ClientState::Watching(r.watch_id))
                .expect("a response for a watcher on this member");
            watcher.client.on_response(&r);
            let received = match r.body {
                WatchEvents::Events(events) => Received::Events(events),
                WatchEvents::Progress => Received::Progress(r.revision),
                WatchEvents::Canceled(WatchError::Compacted { compact_revision }) => {
                    Received::Compacted(compact_revision)
                }
            };
            let segment = watcher.stream.segments.last_mut().expect("connected");
            segment.responses.push(received);
        }
    }

    /// Every member catches up and sends everything, with progress notifications.
    fn settle(&mut self) {
        for m in 0..self.members.len() {
            self.catch_up(m, usize::MAX);
            self.poll(m, true);
        }
    }

    fn violations(&self) -> Vec<Violation> {
        let streams: Vec<Stream> = self.watchers.iter().map(|w| w.stream.clone()).collect();
        watch_check::check_all(&self.log, &streams)
    }

    /// The events watcher `w` received, as (revision, key).
    fn received(&self, w: usize) -> Vec<(u64, String)> {
        let segments = &self.watchers[w].stream.segments;
        segments
            .iter()
            .flat_map(|s| &s.responses)
            .flat_map(|r| match r {
                Received::Events(evs) => evs.clone(),
                _ => Vec::new(),
            })
            .map(|e| (e.kv.mod_revision, e.kv.key))
            .collect()
    }
}

fn single(v: &[Violation]) -> &Violation {
    assert_eq!(v.len(), 1, "{v:#?}");
    &v[0]
}

#[test]
fn prefix_end_increments_the_last_byte() {
    assert_eq!(prefix_end("a"), "b");
    assert_eq!(prefix_end("ab"), "ac");
    assert_eq!(prefix_end(""), "\0");
    assert_eq!(prefix_end("a\x7f"), "b");
}

#[test]
fn a_watch_replays_from_its_start_then_follows_with_whole_revisions() {
    let mut c = Cluster::new(1, 1, WatchBugs::default());
    c.commit(put("a", "1"));
    c.commit(put("b", "1"));
    c.watch("a", &prefix_end("a"), 1, 0, WatchBugs::default());
    c.watch("b", "", 0, 0, WatchBugs::default());
    c.commit(txn("a", "ab", "2"));
    c.commit(put("b", "2"));
    c.commit(delete("a", &prefix_end("a")));
    c.settle();
    assert_eq!(
        c.received(0),
        [(1, "a"), (3, "a"), (3, "ab"), (5, "a"), (5, "ab")].map(|(r, k)| (r, k.to_string()))
    );
    // From now: only what came after the creation at revision 2.
    assert_eq!(c.received(1), [(4, "b".to_string())]);
    // One revision per response: the transaction's two events arrive together.
    let responses = &c.watchers[0].stream.segments[0].responses;
    assert_eq!(
        responses.len(),
        4,
        "three revisions and a progress: {responses:?}"
    );
    assert!(matches!(&responses[1], Received::Events(e) if e.len() == 2));
    assert_eq!(responses[3], Received::Progress(5));
    assert_eq!(c.violations(), []);
}

#[test]
fn a_start_below_the_compaction_revision_is_refused_and_one_at_it_is_served() {
    let mut c = Cluster::new(1, 8, WatchBugs::default());
    for v in ["1", "2", "3", "4"] {
        c.commit(put("k", v));
    }
    c.commit(EtcdCommand::Compact { revision: 3 });
    let store = &c.members[0].store;
    let mut server = WatchServer::new(8, WatchBugs::default());
    let request = |start_revision| WatchRequest {
        key: "k".into(),
        range_end: String::new(),
        start_revision,
    };
    // etcd: `minRev < compactRev` is compacted; the compaction revision itself is not.
    assert_eq!(
        server.create(store, request(2)),
        Err(WatchError::Compacted {
            compact_revision: 3
        })
    );
    assert!(server.create(store, request(3)).is_ok());
    c.watch("k", "", 2, 0, WatchBugs::default());
    c.watch("k", "", 3, 0, WatchBugs::default());
    c.settle();
    assert_eq!(
        c.watchers[0].client.state(),
        ClientState::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(c.received(1), [(3, "k".to_string()), (4, "k".to_string())]);
    assert_eq!(c.violations(), []);
}

#[test]
fn a_watch_overtaken_by_compaction_is_cancelled_with_the_compact_revision() {
    let mut c = Cluster::new(2, 8, WatchBugs::default());
    c.commit(put("k", "1"));
    c.watch("k", "", 1, 1, WatchBugs::default());
    for v in ["2", "3", "4"] {
        c.commit(put("k", v));
    }
    c.commit(EtcdCommand::Compact { revision: 3 });
    // Member 1 applies it all before its watch is served.
    c.settle();
    assert_eq!(
        c.watchers[0].stream.segments[0].responses,
        [Received::Compacted(3)]
    );
    assert_eq!(c.violations(), []);
}

#[test]
fn a_resumed_watch_continues_with_no_gap_and_no_repeat() {
    let mut c = Cluster::new(2, 1, WatchBugs::default());
    c.watch("a", &prefix_end("a"), 0, 0, WatchBugs::default());
    c.commit(put("a", "1"));
    c.poll(0, false);
    c.reconnect(0, 1);
    c.commit(put("ab", "2"));
    c.commit(put("a", "3"));
    c.catch_up(1, 1);
    c.poll(1, true);
    c.reconnect(0, 0);
    c.settle();
    assert_eq!(c.watchers[0].stream.segments.len(), 3);
    assert_eq!(
        c.received(0),
        [(1, "a"), (2, "ab"), (3, "a")].map(|(r, k)| (r, k.to_string()))
    );
    assert_eq!(c.violations(), []);
}

#[test]
fn watch_skip_at_compaction_is_caught_as_reliable() {
    let bugs = WatchBugs {
        skip_at_compaction: true,
        ..WatchBugs::default()
    };
    let mut c = Cluster::new(1, 8, bugs);
    c.commit(put("a", "1"));
    c.commit(delete("a", ""));
    c.commit(put("a", "3"));
    c.commit(EtcdCommand::Compact { revision: 2 });
    c.watch("a", "", 2, 0, WatchBugs::default());
    c.settle();
    // The delete at the compaction revision is lost.
    assert_eq!(c.received(0), [(3, "a".to_string())]);
    let v = single(&c.violations()).clone();
    assert_eq!(
        (v.guarantee, v.watcher, v.revision),
        (Guarantee::Reliable, 0, 2)
    );
    let event = v.event.expect("the missing event");
    assert_eq!(
        (event.kind, event.kv.key.as_str()),
        (EventKind::Delete, "a")
    );
}

#[test]
fn watch_resume_off_by_one_is_caught_as_reliable() {
    let bugs = WatchBugs {
        resume_off_by_one: true,
        ..WatchBugs::default()
    };
    let mut c = Cluster::new(1, 8, WatchBugs::default());
    c.watch("k", "", 1, 0, bugs);
    c.commit(put("k", "1"));
    c.poll(0, false);
    c.reconnect(0, 0);
    c.commit(put("k", "2"));
    c.commit(put("k", "3"));
    c.settle();
    assert_eq!(c.watchers[0].stream.segments[1].start_revision, 3);
    assert_eq!(c.received(0), [(1, "k".to_string()), (3, "k".to_string())]);
    let v = single(&c.violations()).clone();
    assert_eq!(
        (v.guarantee, v.watcher, v.revision),
        (Guarantee::Reliable, 0, 2)
    );
    assert_eq!(v.event.expect("the missing event").kv.value, "2");
}

/// A log of five revisions: `a` at 1, `a` and `b` at 2 (a transaction), `b` at 3,
/// `a` at 4, `a` deleted at 5; and the events by revision and key.
fn hand_log() -> (EventLog, impl Fn(u64, &str) -> Event) {
    let mut c = Cluster::new(1, 8, WatchBugs::default());
    c.commit(put("a", "1"));
    c.commit(txn("a", "b", "2"));
    c.commit(put("b", "3"));
    c.commit(put("a", "4"));
    c.commit(delete("a", ""));
    let log = c.log.clone();
    let store = c.members[0].store.clone();
    let event = move |rev: u64, key: &str| {
        store
            .events_from(rev)
            .expect("not compacted")
            .into_iter()
            .find(|(r, e)| *r == rev && e.kv.key == key)
            .map(|(_, e)| e.clone())
            .expect("such an event")
    };
    (log, event)
}

fn stream(start: u64, responses: Vec<Received>) -> Stream {
    Stream {
        watcher: 7,
        range: Range {
            key: "\0".into(),
            range_end: "\0".into(),
        },
        segments: vec![Segment {
            start_revision: start,
            opened: Opened::Created { revision: 5 },
            responses,
        }],
    }
}

fn first(log: &EventLog, s: &Stream) -> (Guarantee, u64) {
    let v = watch_check::check(log, s).expect("a violation");
    assert_eq!(v.watcher, 7);
    (v.guarantee, v.revision)
}

#[test]
fn hand_made_streams_are_judged_by_the_guarantee_they_break() {
    use Received::{Compacted, Events, Progress};
    let (log, e) = hand_log();
    let good = stream(
        1,
        vec![
            Events(vec![e(1, "a"), e(2, "a"), e(2, "b")]),
            Progress(2),
            Events(vec![e(3, "b")]),
            Events(vec![e(4, "a"), e(5, "a")]),
            Progress(5),
        ],
    );
    assert_eq!(watch_check::check(&log, &good), None);

    let bad = |responses| stream(1, responses);
    let ordered = bad(vec![
        Events(vec![e(1, "a"), e(2, "a"), e(2, "b")]),
        Events(vec![e(4, "a")]),
        Events(vec![e(3, "b")]),
    ]);
    assert_eq!(first(&log, &ordered), (Guarantee::Ordered, 3));
    let unique = bad(vec![
        Events(vec![e(1, "a")]),
        Events(vec![e(1, "a"), e(2, "a"), e(2, "b")]),
    ]);
    assert_eq!(first(&log, &unique), (Guarantee::Unique, 1));
    let split = bad(vec![
        Events(vec![e(1, "a"), e(2, "a")]),
        Events(vec![e(2, "b")]),
    ]);
    assert_eq!(first(&log, &split), (Guarantee::Atomic, 2));
    let partial = bad(vec![Events(vec![e(1, "a"), e(2, "b")]), Progress(5)]);
    assert_eq!(first(&log, &partial), (Guarantee::Atomic, 2));
    let gap = bad(vec![
        Events(vec![e(1, "a"), e(2, "a"), e(2, "b")]),
        Events(vec![e(4, "a")]),
    ]);
    assert_eq!(first(&log, &gap), (Guarantee::Reliable, 3));
    let early_progress = bad(vec![
        Events(vec![e(1, "a"), e(2, "a"), e(2, "b")]),
        Progress(3),
    ]);
    assert_eq!(first(&log, &early_progress), (Guarantee::Bookmarkable, 3));
    // A notification below an earlier one (a member behind) claims nothing new.
    let behind = bad(vec![
        Events(vec![e(1, "a"), e(2, "a"), e(2, "b")]),
        Progress(2),
        Progress(1),
        Events(vec![e(3, "b")]),
    ]);
    assert_eq!(watch_check::check(&log, &behind), None);
    let below_start = stream(3, vec![Events(vec![e(2, "a"), e(2, "b"), e(3, "b")])]);
    assert_eq!(first(&log, &below_start), (Guarantee::Resumable, 2));
    let wrong_compaction = bad(vec![Events(vec![e(1, "a")]), Compacted(2)]);
    assert_eq!(first(&log, &wrong_compaction), (Guarantee::Resumable, 2));
    let mut forged = e(3, "b");
    forged.kv.value = "forged".into();
    let invalid = bad(vec![Events(vec![e(1, "a"), e(2, "a"), e(2, "b"), forged])]);
    assert_eq!(first(&log, &invalid), (Guarantee::Valid, 3));

    // A resume that skips a revision is a gap in the watcher's stream; one that
    // repeats it breaks uniqueness; a refusal inside the history window breaks
    // resumability.
    let resumed = |start, opened, responses| {
        let mut s = stream(1, vec![Events(vec![e(1, "a")])]);
        s.segments.push(Segment {
            start_revision: start,
            opened,
            responses,
        });
        s
    };
    let created = Opened::Created { revision: 5 };
    let good = resumed(2, created, vec![Events(vec![e(2, "a"), e(2, "b")])]);
    assert_eq!(watch_check::check(&log, &good), None);
    let skipped = resumed(3, created, vec![Events(vec![e(3, "b")])]);
    assert_eq!(first(&log, &skipped), (Guarantee::Reliable, 2));
    let repeated = resumed(1, created, vec![Events(vec![e(1, "a")])]);
    assert_eq!(first(&log, &repeated), (Guarantee::Unique, 1));
    let refused = resumed(
        2,
        Opened::Compacted {
            compact_revision: 2,
        },
        Vec::new(),
    );
    assert_eq!(first(&log, &refused), (Guarantee::Resumable, 2));
    let rightly_refused = resumed(
        2,
        Opened::Compacted {
            compact_revision: 3,
        },
        Vec::new(),
    );
    assert_eq!(watch_check::check(&log, &rightly_refused), None);
}

/// One step of a random workload.
#[derive(Clone, Debug)]
enum Step {
    Put(usize, u8),
    /// Delete a key, or (true) every key with it as prefix.
    Delete(usize, bool),
    Txn(usize, usize, u8),
    /// Compact `back` revisions below the current one.
    Compact(u64),
    /// Member 1 applies up to `n` more commands.
    CatchUp(usize),
    /// A member sends its watches what they miss; with progress notifications.
    Poll(usize, bool),
    /// A watcher's stream breaks; it resumes on a member (a leader change when that
    /// is the other member).
    Reconnect(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..KEYS.len(), any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
        1 => (0..KEYS.len(), any::<bool>()).prop_map(|(k, p)| Step::Delete(k, p)),
        1 => (0..KEYS.len(), 0..KEYS.len(), any::<u8>()).prop_map(|(a, b, v)| Step::Txn(a, b, v)),
        1 => (0..4u64).prop_map(Step::Compact),
        2 => (0..4usize).prop_map(Step::CatchUp),
        3 => (0..2usize, any::<bool>()).prop_map(|(m, p)| Step::Poll(m, p)),
        2 => (0..3usize, 0..2usize).prop_map(|(w, m)| Step::Reconnect(w, m)),
    ]
}

/// Runs `steps` with three watchers (a prefix, a key, every key) created after
/// `created` steps from `starts`, then settles.
fn run(
    steps: &[Step],
    created: usize,
    starts: [u64; 3],
    max_revisions: usize,
    bugs: WatchBugs,
) -> Cluster {
    let mut c = Cluster::new(2, max_revisions, bugs);
    for (i, s) in steps.iter().enumerate() {
        if i == created.min(steps.len() - 1) {
            c.watch("a", &prefix_end("a"), starts[0], 0, bugs);
            c.watch("b", "", starts[1], 1, bugs);
            c.watch("\0", "\0", starts[2], 0, bugs);
        }
        match *s {
            Step::Put(k, v) => c.commit(put(KEYS[k], &v.to_string())),
            Step::Delete(k, prefix) => {
                let end = if prefix {
                    prefix_end(KEYS[k])
                } else {
                    String::new()
                };
                c.commit(delete(KEYS[k], &end));
            }
            Step::Txn(a, b, v) if a != b => c.commit(txn(KEYS[a], KEYS[b], &v.to_string())),
            Step::Txn(a, _, v) => c.commit(put(KEYS[a], &v.to_string())),
            Step::Compact(back) => {
                let rev = c.members[0].store.revision().saturating_sub(back);
                c.commit(EtcdCommand::Compact { revision: rev });
            }
            Step::CatchUp(n) => c.catch_up(1, n),
            Step::Poll(m, progress) => c.poll(m, progress),
            Step::Reconnect(w, m) if w < c.watchers.len() => c.reconnect(w, m),
            Step::Reconnect(..) => {}
        }
    }
    c.settle();
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_workloads_keep_every_watch_guarantee(
        steps in proptest::collection::vec(step(), 1..60),
        created in 0..20usize,
        starts in proptest::array::uniform3(0..12u64),
        max_revisions in 1..4usize,
    ) {
        let c = run(&steps, created, starts, max_revisions, WatchBugs::default());
        prop_assert_eq!(c.violations(), Vec::<Violation>::new());
    }

    #[test]
    fn random_workloads_with_a_bug_break_only_reliable_or_bookmarkable(
        steps in proptest::collection::vec(step(), 1..60),
        created in 0..20usize,
        starts in proptest::array::uniform3(0..12u64),
        max_revisions in 1..4usize,
        which in any::<bool>(),
    ) {
        let bugs = WatchBugs { skip_at_compaction: which, resume_off_by_one: !which };
        let c = run(&steps, created, starts, max_revisions, bugs);
        for v in c.violations() {
            prop_assert!(
                matches!(v.guarantee, Guarantee::Reliable | Guarantee::Bookmarkable),
                "{}", v
            );
        }
    }
}

/// Random workloads (a fixed seed) with each bug: some runs break a guarantee, and
/// Reliable is among those named.
#[test]
fn random_workloads_catch_each_bug() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let inputs = (
        proptest::collection::vec(step(), 1..60),
        0..20usize,
        proptest::array::uniform3(0..12u64),
        1..4usize,
    );
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let bugs = [
        WatchBugs {
            skip_at_compaction: true,
            ..WatchBugs::default()
        },
        WatchBugs {
            resume_off_by_one: true,
            ..WatchBugs::default()
        },
    ];
    let mut reliable = [0; 2];
    for _ in 0..200 {
        let (steps, created, starts, max_revisions) =
            inputs.new_tree(&mut runner).expect("a case").current();
        for (i, bugs) in bugs.into_iter().enumerate() {
            let c = run(&steps, created, starts, max_revisions, bugs);
            if c.violations()
                .iter()
                .any(|v| v.guarantee == Guarantee::Reliable)
            {
                reliable[i] += 1;
            }
        }
    }
    assert!(reliable.iter().all(|&n| n > 0), "{reliable:?}");
}

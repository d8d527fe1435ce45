//! A seed's fingerprint is the same on every machine: golden trace hashes of a few
//! small fixed runs, and the golden bytes of the encoding behind them.
//!
//! These constants change only when the fingerprint's encoding
//! (`src/fingerprint.rs`) or the simulation's behaviour changes, intentionally: a
//! protocol, the simulator, a scenario file or the random streams. After such a
//! change, check that the new behaviour is the intended one, then update the
//! constants: `cargo test --test fingerprint` prints every new hash. A failure with
//! no such change means the fingerprint is not portable: a bug.

use std::path::Path;
use std::sync::Arc;

use faultline::fingerprint::encode;
use faultline::history::KvOp;
use faultline::kv::{KvCommand, KvQuery};
use faultline::raft::{Entry, EntryData, Message, Request, RequestOp};
use faultline::run::run_seed;
use faultline::scenario::Scenario;
use faultline::sim::network::DropReason;
use faultline::{OpType, RequestId, System};

fn trace_hash<S: System>(scenario: &str, seed: u64) -> u64 {
    let outcome = outcome::<S>(scenario, seed);
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    outcome.trace_hash
}

fn outcome<S: System>(scenario: &str, seed: u64) -> faultline::run::Outcome {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{scenario}.toml"));
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let setup = Arc::new(scenario.setup::<S>(&[]).unwrap_or_else(|e| panic!("{e}")));
    run_seed::<S>(
        &scenario,
        &setup,
        &scenario.schedule_for(seed, &setup),
        false,
    )
}

/// (scenario, seed, trace hash). Between them they fingerprint every shipped
/// protocol, the exponential latency tail (broadcast-lossy) and gossip's suspicion
/// timeouts (gossip-crash-detect).
const GOLDEN: &[(&str, u64, u64)] = &[
    ("broadcast-crash", 7, 0xe6e3606c096d650c),
    ("broadcast-lossy", 1, 0x5086412eff3e10ff),
    ("gossip-crash-detect", 1, 0xa6653be5f4e49143),
    ("raft-leader-crash", 1, 0xad17f4806c63beda),
];

#[test]
fn golden_trace_hashes() {
    let mut wrong = Vec::new();
    for &(scenario, seed, expected) in GOLDEN {
        let hash = match scenario.split('-').next() {
            Some("broadcast") => trace_hash::<faultline::broadcast::Broadcast>(scenario, seed),
            Some("gossip") => trace_hash::<faultline::gossip::Swim>(scenario, seed),
            Some("raft") => trace_hash::<faultline::raft::RaftKv>(scenario, seed),
            _ => unreachable!("{scenario}"),
        };
        if hash != expected {
            wrong.push(format!("    (\"{scenario}\", {seed}, 0x{hash:016x}),"));
        }
    }
    assert!(
        wrong.is_empty(),
        "trace hashes changed (see this file's header before updating); now:\n{}",
        wrong.join("\n")
    );
}

/// Seed 1 of every shipped scenario, passing or failing, hashes as recorded in
/// `tests/trace_hashes.txt` (one `scenario hash` per line). Refactors of the
/// simulator or a protocol must leave this file unchanged; an intended change of
/// behaviour rewrites it with `FAULTLINE_BLESS=1 cargo test --test fingerprint`.
#[test]
fn every_shipped_scenario_keeps_its_trace_hash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 40, "scenarios/ holds {} files", names.len());
    let now: String = names
        .iter()
        .map(|name| {
            let path = root.join("scenarios").join(format!("{name}.toml"));
            let protocol = Scenario::load(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .protocol;
            let hash = match protocol.as_str() {
                "broadcast" => outcome::<faultline::broadcast::Broadcast>(name, 1),
                "swim" => outcome::<faultline::gossip::Swim>(name, 1),
                "raft" => outcome::<faultline::raft::RaftKv>(name, 1),
                "etcd" => outcome::<faultline::etcd::Etcd>(name, 1),
                "consul" => outcome::<faultline::consul::Consul>(name, 1),
                "gossip-discovery" => {
                    outcome::<faultline::gossip_discovery::GossipDiscovery>(name, 1)
                }
                _ => panic!("{name}: unknown protocol {protocol}"),
            }
            .trace_hash;
            format!("{name} 0x{hash:016x}\n")
        })
        .collect();
    let file = root.join("tests/trace_hashes.txt");
    if std::env::var_os("FAULTLINE_BLESS").is_some() {
        std::fs::write(&file, &now).unwrap();
    }
    let recorded = std::fs::read_to_string(&file).unwrap_or_default();
    let changed: Vec<&str> = now
        .lines()
        .filter(|l| !recorded.lines().any(|r| r == *l))
        .collect();
    assert!(
        changed.is_empty() && recorded.lines().count() == now.lines().count(),
        "trace hashes differ from tests/trace_hashes.txt; now:\n{}",
        changed.join("\n")
    );
}

/// Golden bytes of traced values: any change to their encoding fails here.
#[test]
fn golden_encodings_of_traced_values() {
    let le = |v: u64| v.to_le_bytes().to_vec();
    let cat = |parts: &[&[u8]]| parts.concat();

    assert_eq!(
        encode(&RequestId { client: 2, seq: 9 }),
        cat(&[&le(2), &le(9)])
    );
    assert_eq!(encode(&OpType::Info), [3, 0, 0, 0]);
    assert_eq!(encode(&DropReason::NodeDown), [2, 0, 0, 0]);
    assert_eq!(
        encode(&KvOp::Cas {
            key: "k".into(),
            value: (None, "v".into()),
        }),
        cat(&[&[4, 0, 0, 0], &le(1), b"k", &[0], &le(1), b"v"])
    );

    // A Raft request: struct, then enum in enum, then strings.
    let put = KvCommand::Put {
        key: "x".into(),
        value: "42".into(),
    };
    let request: Request = Request {
        seq: 5,
        op: RequestOp::Command(put.clone().into()),
    };
    assert_eq!(
        encode(&request),
        cat(&[
            &le(5),
            &[1, 0, 0, 0],
            &[0, 0, 0, 0],
            &le(1),
            b"x",
            &le(2),
            b"42"
        ])
    );
    // A read: tag 0, then the query, which for the KV store is just its key.
    let read: Request = Request {
        seq: 6,
        op: RequestOp::Read(KvQuery { key: "x".into() }),
    };
    assert_eq!(encode(&read), cat(&[&le(6), &[0, 0, 0, 0], &le(1), b"x"]));

    // A nested message: AppendEntries fingerprints its entries by identity
    // (term, index, then tag and (client, seq) for a command), not by payload.
    let append: Message = Message::Append {
        term: 3,
        prev_index: 1,
        prev_term: 2,
        entries: vec![
            Entry {
                term: 3,
                index: 2,
                data: EntryData::Noop,
            },
            Entry {
                term: 3,
                index: 3,
                data: EntryData::Command {
                    client: 1,
                    seq: 5,
                    cmd: put.into(),
                },
            },
        ],
        commit: 1,
    };
    assert_eq!(
        encode(&append),
        cat(&[
            &[4, 0, 0, 0],
            &le(3),
            &le(1),
            &le(2),
            &le(2), // two entries
            &le(3),
            &le(2),
            &[0, 0, 0, 0],
            &le(3),
            &le(3),
            &[1, 0, 0, 0],
            &le(1),
            &le(5),
            &le(1), // commit
        ])
    );
}

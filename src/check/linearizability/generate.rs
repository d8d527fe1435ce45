//! Histories generated from real sequential executions of a key-value store, for
//! tests and benchmarks: linearizable by construction.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::history::{HistoryEvent, KvOp, OpType};
use crate::process::ClientId;

/// Shapes of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct GenParams {
    /// Operations in all.
    pub ops: usize,
    /// Keys they spread over.
    pub keys: usize,
    /// Client processes.
    pub clients: usize,
    /// Percent of operations whose completion is recorded as `info` (they still took
    /// effect, or not, at random).
    pub info_percent: u32,
}

/// A history generated from a real sequential execution of a key-value store: each
/// operation takes effect at one instant inside a random interval of its client's, so
/// the history is linearizable by construction. Deterministic in `seed`. For tests
/// and benchmarks.
pub fn generate_linearizable_history(seed: u64, p: GenParams) -> Vec<HistoryEvent<KvOp>> {
    assert!(p.keys > 0 && p.clients > 0, "need keys and clients");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store: BTreeMap<String, String> = BTreeMap::new();
    // Per client: when it is next free (ns).
    let mut free_at = vec![0u64; p.clients];
    // (time, order, event): sorted at the end; `order` keeps invoke before completion.
    let mut events: Vec<(u64, usize, ClientId, OpType, KvOp)> = Vec::new();
    let mut now: u64 = 0;
    let mut seq = 0usize;
    for i in 0..p.ops {
        now += rng.gen_range(1..=20);
        // A client free by now, or the earliest to become free.
        let free: Vec<usize> = (0..p.clients).filter(|&c| free_at[c] < now).collect();
        let client = if free.is_empty() {
            let c = (0..p.clients).min_by_key(|&c| free_at[c]).expect("clients");
            now = free_at[c] + 1;
            c
        } else {
            free[rng.gen_range(0..free.len())]
        };
        let call = rng.gen_range(free_at[client] + 1..=now);
        let lp = now;
        let key = format!("k{}", rng.gen_range(0..p.keys));
        let cur = store.get(&key).cloned();
        let (op, outcome) = match rng.gen_range(0..100) {
            0..=39 => (
                KvOp::Get {
                    key: key.clone(),
                    value: cur.clone(),
                },
                OpType::Ok,
            ),
            40..=64 => {
                let v = format!("v{i}");
                store.insert(key.clone(), v.clone());
                (KvOp::Put { key, value: v }, OpType::Ok)
            }
            65..=79 => {
                let v = format!("a{i},");
                store.insert(key.clone(), format!("{}{v}", cur.unwrap_or_default()));
                (KvOp::Append { key, value: v }, OpType::Ok)
            }
            80..=84 => {
                store.remove(&key);
                (KvOp::Delete { key }, OpType::Ok)
            }
            _ => {
                // Half the time expect the current value (succeeds), else a stale one.
                let expected = if rng.gen_bool(0.5) {
                    cur.clone()
                } else {
                    Some(format!("stale{i}"))
                };
                let new = format!("c{i}");
                let ok = expected == cur;
                if ok {
                    store.insert(key.clone(), new.clone());
                }
                (
                    KvOp::Cas {
                        key,
                        value: (expected, new),
                    },
                    if ok { OpType::Ok } else { OpType::Fail },
                )
            }
        };
        let ret = lp + rng.gen_range(0..=60);
        let kind = if outcome == OpType::Ok && rng.gen_range(0..100) < p.info_percent {
            OpType::Info
        } else {
            outcome
        };
        let invoke_op = match &op {
            KvOp::Get { key, .. } => KvOp::Get {
                key: key.clone(),
                value: None,
            },
            o => o.clone(),
        };
        events.push((call, seq, client, OpType::Invoke, invoke_op));
        events.push((ret, seq + 1, client, kind, op));
        seq += 2;
        free_at[client] = ret;
    }
    events.sort_by_key(|e| (e.0, e.1));
    events
        .into_iter()
        .enumerate()
        .map(|(index, (time_ns, _, process, kind, op))| HistoryEvent {
            index,
            process,
            kind,
            op,
            time_ns,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::check::linearizability::check_kv;
    use crate::system::Verdict;

    #[test]
    fn generated_history_is_linearizable() {
        for seed in 0..5 {
            let h = generate_linearizable_history(
                seed,
                GenParams {
                    ops: 400,
                    keys: 3,
                    clients: 5,
                    info_percent: 3,
                },
            );
            let o = check_kv(&h, Some(Duration::from_secs(20)));
            assert_eq!(o.verdict, Verdict::Pass, "seed {seed}");
            assert_eq!(o.keys.len(), 3);
        }
    }
}

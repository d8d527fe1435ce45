//! Metrics: the run's counters, and the metrics the run reports built from them, the
//! checkers' own figures, the `sometimes` marks and each fault's effects.
//!
//! Every loop here runs over a fixed list: the checkers, the counters, the marks the
//! system lists (`System::sometimes`), and the schedule's faults and their effects.

use super::World;
use crate::check::Metrics;
use crate::history::OpType;
use crate::system::System;

/// Counts for the run's metrics.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub sent: u64,
    /// Messages each node sent, by node id (grown as nodes send): the
    /// `messages_sent.n<ID>` metrics, for per-role message rates.
    pub sent_by: Vec<u64>,
    pub bytes_sent: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub dropped_partition: u64,
    pub dropped_loss: u64,
    pub dropped_node_down: u64,
    pub timers_fired: u64,
    pub writes: u64,
    pub syncs: u64,
    pub syncs_completed: u64,
    pub sync_errors: u64,
    pub writes_lost: u64,
    pub aborts: u64,
    pub disk_wipes: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub pauses: u64,
    pub dropped_client_partition: u64,
    pub client_pauses: u64,
    /// Requests a pin sent to another node than the client chose.
    pub client_requests_pinned: u64,
    pub ops: [u64; 4],
}

impl<S: System> World<S> {
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new();
        for checker in &self.checkers {
            checker.metrics(&mut m);
        }
        self.coverage_metrics(&mut m);
        let c = &self.counters;
        let figures = [
            ("messages_sent", c.sent),
            ("bytes_sent", c.bytes_sent),
            ("messages_delivered", c.delivered),
            ("messages_duplicated", c.duplicated),
            ("messages_dropped_partition", c.dropped_partition),
            ("messages_dropped_loss", c.dropped_loss),
            ("messages_dropped_node_down", c.dropped_node_down),
            ("timers_fired", c.timers_fired),
            ("storage_writes", c.writes),
            ("storage_syncs", c.syncs),
            ("storage_syncs_completed", c.syncs_completed),
            ("storage_sync_errors", c.sync_errors),
            ("storage_writes_lost", c.writes_lost),
            ("aborts", c.aborts),
            ("disk_wipes", c.disk_wipes),
            ("crashes", c.crashes),
            ("restarts", c.restarts),
            ("pauses", c.pauses),
            (
                "messages_dropped_client_partition",
                c.dropped_client_partition,
            ),
            ("client_pauses", c.client_pauses),
            ("client_requests_pinned", c.client_requests_pinned),
            ("ops_ok", c.ops[OpType::Ok as usize]),
            ("ops_fail", c.ops[OpType::Fail as usize]),
            ("ops_info", c.ops[OpType::Info as usize]),
        ];
        for (name, value) in figures {
            m.insert(name.to_string(), value as f64);
        }
        for (node, &sent) in c.sent_by.iter().enumerate() {
            m.insert(format!("messages_sent.n{node}"), sent as f64);
        }
        if self.operator.enabled {
            let [committed, refused, abandoned, pending] = self.operator.counts();
            m.insert("member_changes_committed".into(), committed as f64);
            m.insert("member_changes_refused".into(), refused as f64);
            m.insert("member_changes_abandoned".into(), abandoned as f64);
            m.insert("member_changes_pending".into(), pending as f64);
        }
        for (name, &count) in &self.sometimes {
            m.insert(format!("sometimes.{name}"), count as f64);
        }
        // What each fault did, by kind: `fault_<kind>_count` (faults of that kind that
        // started) and `fault_<kind>_<effect>` summed over them, for every kind in the
        // schedule (zero when they did nothing).
        for (index, &kind) in self.fault_kinds.iter().enumerate() {
            let count = m
                .entry(format!("fault_{}_count", kind.name()))
                .or_insert(0.0);
            *count += f64::from(u8::from(self.fault_started[index]));
            for effect in kind.effects() {
                let value =
                    self.fault_effects.get(index, effect) + self.net.effects.get(index, effect);
                *m.entry(format!("fault_{}_{effect}", kind.name()))
                    .or_insert(0.0) += value;
            }
        }
        if let Some(&committed) = m.get("committed_ops").filter(|&&v| v > 0.0) {
            m.insert(
                "messages_per_committed_op".into(),
                c.sent as f64 / committed,
            );
            m.insert(
                "bytes_per_committed_op".into(),
                c.bytes_sent as f64 / committed,
            );
        }
        m
    }
}

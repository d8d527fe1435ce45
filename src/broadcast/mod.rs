//! Reliable broadcast: the smallest real protocol faultline ships, and a worked example
//! of writing one against the process API.
//!
//! - [`process`]: the protocol, a sans-IO [`crate::Process`].
//! - [`client`]: a simulated client that broadcasts values and records a history.
//! - [`check`]: integrity, durability and agreement, on the omniscient view.
//!
//! [`Broadcast`] ties them to scenario files (`protocol = "broadcast"`).

#![warn(missing_docs)]

pub mod check;
pub mod client;
pub mod process;

#[cfg(test)]
mod tests;

pub use check::{Agreement, Durability, Integrity};
pub use client::{BroadcastClient, ClientTimer, Op, Workload};
pub use process::{
    BroadcastProcess, Bugs, Config, Delivery, Message, Request, Response, Source, Timer,
};

use crate::check::Checker;
use crate::process::{ClientId, NodeId};
use crate::system::{Bug, Setup, System};

/// The reliable broadcast as scenario files run it: `cluster.protocol = "broadcast"`.
pub struct Broadcast;

const BUGS: &[Bug] = &[
    Bug {
        name: "ack-before-sync",
        scenario: "broadcast-crash",
        description: "a node answers Ok before syncing the value (the sync waits for a later \
                      step); a crash in between loses an acknowledged broadcast",
    },
    Bug {
        name: "no-retransmit",
        scenario: "broadcast-lossy",
        description: "values are sent once and never resent; a lost message keeps a node \
                      from ever delivering the value",
    },
];

impl System for Broadcast {
    const NAME: &'static str = "broadcast";
    type Process = BroadcastProcess;
    type Client = BroadcastClient;
    type Config = Config;
    type Workload = Workload;

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        let (c, w) = (&setup.config, &setup.workload);
        let bad = |field: &str, message: String| Err((field.to_string(), message));
        if c.retransmit_ms == 0 {
            return bad("cluster.config.retransmit_ms", "must be at least 1".into());
        }
        if c.retransmit_ms_max < c.retransmit_ms {
            let message = format!("must be at least retransmit_ms ({})", c.retransmit_ms);
            return bad("cluster.config.retransmit_ms_max", message);
        }
        if c.max_values == 0 {
            return bad("cluster.config.max_values", "must be at least 1".into());
        }
        if c.retransmit_batch_max == 0 {
            return bad(
                "cluster.config.retransmit_batch_max",
                "must be at least 1".into(),
            );
        }
        if w.interval_ms == 0 {
            return bad("workload.interval_ms", "must be at least 1".into());
        }
        if w.request_timeout_ms == 0 {
            return bad("workload.request_timeout_ms", "must be at least 1".into());
        }
        // Every broadcast must fit on every node, or agreement could never hold.
        let total = (w.clients as u64).saturating_mul(w.max_values);
        if total > c.max_values as u64 {
            let message = format!(
                "{} clients x {} values exceed cluster.config.max_values ({})",
                w.clients, w.max_values, c.max_values
            );
            return bad("workload.max_values", message);
        }
        Ok(())
    }

    fn process(setup: &Setup<Self>, _id: NodeId) -> BroadcastProcess {
        let bugs = Bugs {
            ack_before_sync: setup.bug("ack-before-sync"),
            no_retransmit: setup.bug("no-retransmit"),
        };
        BroadcastProcess::new(setup.config.clone(), bugs)
    }

    fn clients(setup: &Setup<Self>) -> usize {
        setup.workload.clients
    }

    fn client(setup: &Setup<Self>, _id: ClientId) -> BroadcastClient {
        BroadcastClient::new(&setup.workload)
    }

    fn checkers(setup: &Setup<Self>) -> Vec<Box<dyn Checker<BroadcastProcess>>> {
        vec![
            Box::new(Integrity::new(setup.nodes)),
            Box::new(Durability::new(setup.nodes)),
            Box::new(Agreement::new(setup.nodes)),
        ]
    }

    fn bugs() -> &'static [Bug] {
        BUGS
    }
}

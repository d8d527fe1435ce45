//! SWIM gossip membership (Das, Gupta, Motivala, DSN 2002) with Lifeguard
//! (Dadgar et al. 2018), as a sans-IO protocol, plus discovery metadata.
//!
//! - [`SwimProcess`]: one member. Each protocol period it pings one member (round-robin
//!   over a reshuffled list, or uniformly at random), asks `indirect_checks` members to
//!   ping-req it after the probe timeout, and suspects it at the end of the period.
//!   Suspicions carry incarnations; only the member raises its own, to refute. Updates
//!   piggyback on every message and on a gossip timer; push-pull exchanges full state.
//! - Join: a member knows only its seeds at first and pushes its state to them until it
//!   hears back. `nodes[i].join_at_ms` starts a member late (it is silent until then);
//!   without it every member starts at once. `nodes[i].leave_at_ms` leaves gracefully.
//! - Crash/restart: the incarnation is persisted and synced whenever it changes; a
//!   restarted member rejoins at the stored incarnation + 1.
//! - Partition repair: at each push-pull a member also contacts one member it holds
//!   dead (Serf's reconnect), and a member that hears from one it holds dead tells it
//!   so (foca's notify-down-members), so the wrongly dead refute.
//! - [`check`]: invariants, liveness and metrics as [`Checker`]s.

#![warn(missing_docs)]

pub mod broadcast;
pub mod check;
pub mod config;
pub mod member;
pub mod suspicion;
pub mod swim;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Deserialize;

pub use config::{NodeSpec, ProbeOrder, SwimConfig};
pub use member::{Member, MemberState, NodeMeta, Update};
pub use swim::{Phase, SwimBugs, SwimMessage, SwimProcess, SwimTimer};

use crate::check::Checker;
use crate::client::NoClient;
use crate::process::{ClientId, NodeId};
use crate::system::{Bug, Setup, System};

/// Membership has no client workload: the `[workload]` table must be empty.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwimWorkload {}

/// SWIM membership as scenario files run it: `cluster.protocol = "swim"`.
pub struct Swim;

/// Bug: a suspected member refutes without raising its incarnation.
pub const BUG_REFUTE_SAME_INCARNATION: &str = "swim-refute-same-incarnation";
/// Bug: an alive update clears a suspicion of the same incarnation.
pub const BUG_ALIVE_OVERRIDES_SUSPECT: &str = "swim-alive-overrides-suspect";

const BUGS: &[Bug] = &[
    Bug {
        name: BUG_REFUTE_SAME_INCARNATION,
        scenario: "gossip-false-suspicion",
        description: "a suspected member refutes without raising its incarnation, so the \
                      refutation loses to the suspicion and a live member is declared dead",
    },
    Bug {
        name: BUG_ALIVE_OVERRIDES_SUSPECT,
        scenario: "gossip-false-suspicion",
        description: "an alive update clears a suspicion of the same incarnation, \
                      against SWIM's precedence rules",
    },
];

impl System for Swim {
    const NAME: &'static str = "swim";
    type Process = SwimProcess;
    type Client = NoClient;
    type Config = SwimConfig;
    type Workload = SwimWorkload;

    fn validate(setup: &Setup<Self>) -> Result<(), (String, String)> {
        setup.config.validate(setup.nodes)
    }

    fn process(setup: &Setup<Self>, id: NodeId) -> SwimProcess {
        let bugs = SwimBugs {
            refute_same_incarnation: setup.bug(BUG_REFUTE_SAME_INCARNATION),
            alive_overrides_suspect: setup.bug(BUG_ALIVE_OVERRIDES_SUSPECT),
        };
        SwimProcess::new(Arc::new(setup.config.clone()), id, setup.nodes, bugs)
    }

    fn clients(_setup: &Setup<Self>) -> usize {
        0
    }

    fn client(_setup: &Setup<Self>, _id: ClientId) -> NoClient {
        NoClient
    }

    fn checkers(setup: &Setup<Self>) -> Vec<Box<dyn Checker<SwimProcess>>> {
        check::checkers(&setup.config, setup.nodes)
    }

    fn sometimes() -> &'static [&'static str] {
        &[
            "suspicion-refuted",
            "suspicion-confirmed",
            "member-declared-dead",
        ]
    }
    fn bugs() -> &'static [Bug] {
        BUGS
    }
}

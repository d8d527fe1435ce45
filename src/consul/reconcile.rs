//! The leader's reconcile of LAN membership into the catalog, after Consul's
//! `agent/consul/leader.go` (`reconcile`, `reconcileMember`) and
//! `leader_registrator_v1.go` (`HandleAliveMember`, `HandleFailedMember`,
//! `HandleLeftMember`):
//!
//! - **alive** (alive or suspect in Serf): unless the node is registered with
//!   `serfHealth` passing already, register it with `serfHealth` passing
//!   ([`CatalogCommand::MemberAlive`]);
//! - **failed** (declared dead by gossip): unless the node is absent from the
//!   catalog (Consul ignores a failed event for an unknown node) or its
//!   `serfHealth` is critical already, set `serfHealth` critical
//!   ([`CatalogCommand::MemberFailed`]); its services and checks stay;
//! - **left**: deregister the node if the catalog holds it
//!   ([`CatalogCommand::MemberLeft`]); the leader never deregisters itself.
//!
//! Consul also reaps catalog nodes that carry `serfHealth` but are no longer Serf
//! members (`reconcileReaped`, after the 72 h `reconnect_timeout`); no run here
//! lasts that long, so nothing is reaped.

use super::agent::node_name;
use super::catalog::{Catalog, CatalogCommand, NodeInfo};
use super::health::{Status, SERF_CHECK_ID};
use super::lan::SerfStatus;
use crate::process::NodeId;

/// The catalog record of node `id`: the name, id and address its agent registers.
pub fn node_info(id: NodeId) -> NodeInfo {
    NodeInfo {
        name: node_name(id),
        id: format!("id-{id}"),
        address: format!("10.0.{}.{}", id / 256, id % 256),
    }
}

/// The write that brings the catalog in line with member `node`'s Serf status, if
/// one is needed; the reconciling leader is `leader`. With `ignore_failed` (the
/// bug `serf-failed-not-reconciled`) failed members are skipped.
pub fn reconcile_member(
    catalog: &Catalog,
    leader: NodeId,
    node: NodeId,
    status: SerfStatus,
    ignore_failed: bool,
) -> Option<CatalogCommand> {
    let name = node_name(node);
    let serf = catalog.check(&name, SERF_CHECK_ID).map(|c| c.value.status);
    match status {
        SerfStatus::Alive => match (catalog.node(&name), serf) {
            (Some(n), Some(Status::Passing)) if n.value == node_info(node) => None,
            _ => Some(CatalogCommand::MemberAlive {
                node: node_info(node),
            }),
        },
        SerfStatus::Failed if ignore_failed => None,
        SerfStatus::Failed => match (catalog.node(&name), serf) {
            (None, _) | (Some(_), Some(Status::Critical)) => None,
            _ => Some(CatalogCommand::MemberFailed { node: name }),
        },
        SerfStatus::Left if node == leader => None,
        SerfStatus::Left => catalog
            .node(&name)
            .map(|_| CatalogCommand::MemberLeft { node: name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::StateMachine;

    fn catalog_with(cmds: &[CatalogCommand]) -> Catalog {
        let mut c = Catalog::default();
        for (i, cmd) in cmds.iter().enumerate() {
            c.apply(i as u64 + 1, cmd);
        }
        c
    }

    #[test]
    fn each_status_writes_once_then_nothing() {
        let empty = Catalog::default();
        let alive = reconcile_member(&empty, 0, 4, SerfStatus::Alive, false).unwrap();
        assert!(matches!(alive, CatalogCommand::MemberAlive { .. }));
        // A failed member the catalog does not hold is ignored.
        assert_eq!(
            reconcile_member(&empty, 0, 4, SerfStatus::Failed, false),
            None
        );
        let registered = catalog_with(std::slice::from_ref(&alive));
        assert_eq!(
            reconcile_member(&registered, 0, 4, SerfStatus::Alive, false),
            None
        );
        let failed = reconcile_member(&registered, 0, 4, SerfStatus::Failed, false).unwrap();
        assert_eq!(
            failed,
            CatalogCommand::MemberFailed {
                node: "node-4".into()
            }
        );
        assert_eq!(
            reconcile_member(&registered, 0, 4, SerfStatus::Failed, true),
            None,
            "the bug skips failed members"
        );
        let critical = catalog_with(&[alive.clone(), failed]);
        assert_eq!(
            reconcile_member(&critical, 0, 4, SerfStatus::Failed, false),
            None
        );
        assert!(matches!(
            reconcile_member(&critical, 0, 4, SerfStatus::Alive, false),
            Some(CatalogCommand::MemberAlive { .. })
        ));
        assert_eq!(
            reconcile_member(&critical, 0, 4, SerfStatus::Left, false),
            Some(CatalogCommand::MemberLeft {
                node: "node-4".into()
            })
        );
        assert_eq!(
            reconcile_member(&critical, 4, 4, SerfStatus::Left, false),
            None,
            "the leader does not deregister itself"
        );
        assert_eq!(
            reconcile_member(&empty, 0, 4, SerfStatus::Left, false),
            None
        );
    }
}

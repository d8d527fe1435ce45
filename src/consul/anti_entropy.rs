//! Anti-entropy: an agent's sync of its own services and checks into the catalog,
//! after `agent/local/state.go` (`updateSyncState`, `SyncChanges`, `syncService`,
//! `syncCheck`, `syncNodeInfo`, `UpdateCheck`) and `agent/ae/ae.go` (`StateSyncer`,
//! `scaleFactor`, `delayer.Jitter`).
//!
//! **The agent is authoritative.** [`sync_commands`] compares the agent's
//! [`LocalState`] with the catalog's view of its node ([`NodeServices`], read with
//! [`super::catalog::CatalogQuery::Node`]) and returns the commands that make the
//! catalog match, in the order `SyncChanges` sends them:
//!
//! 1. the node record, if absent or different (its id or address), on its own;
//! 2. per service id: a catalog service the agent lacks is deregistered (except the
//!    servers' own `consul` service); a local one missing or different in the
//!    catalog is registered, with its out-of-sync checks riding along in the same
//!    registration, so they are applied atomically;
//! 3. per check id: a catalog check the agent lacks is deregistered (except
//!    `serfHealth`, which the leader owns), even if it belonged to a service
//!    deregistered in step 2 (Consul only prunes its own deleted checks there, so
//!    the catalog gets a redundant, harmless deregistration); a local check missing
//!    or different that did not ride with its service is registered on its own,
//!    with its service if it has one.
//!
//! Once the node record is in sync (or step 1 synced it), the later registrations
//! skip the node update (`SkipNodeUpdate: nodeInfoInSync`).
//!
//! **Output-only changes** are deferred. With `check_update_interval` (default 5
//! minutes, [`CHECK_UPDATE_INTERVAL`]) a check update that keeps the status and
//! changes only the output does not mark the check out of sync: a timer of
//! `interval/2 + stagger(interval)` ([`output_sync_delay`]) does, later. While that
//! timer runs, a full sync ignores the output too: the caller names those checks in
//! `output_deferred`. A status change syncs at once. [`needs_immediate_sync`] says
//! which kind of update a [`CheckUpdate`] is.
//!
//! **Timing.** A full sync runs every `interval + stagger(scale · interval)` with
//! `interval` = 1 minute ([`AE_INTERVAL`]) and `scale` = [`scale_factor`] of the
//! cluster size: 1 up to 128 nodes, then +1 each time the cluster doubles
//! (`⌈log2(n) − log2(128)⌉ + 1`). A failed full sync is retried after
//! `15 s + stagger(scale · 15 s)`; a new server triggers one after
//! `stagger(scale · 3 s)`. `stagger(d)` is uniform in `[0, d)` (Consul's
//! `lib.RandomStagger`), drawn from the caller's RNG.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;

use super::catalog::{CatalogCommand, CheckDef, NodeInfo, NodeServices, Registration, ServiceDef};
use super::health::{CheckUpdate, SERF_CHECK_ID};

/// The time between full syncs before scaling and stagger (Consul's `AEInterval`).
pub const AE_INTERVAL: Duration = Duration::from_secs(60);

/// The base delay before a failed full sync is retried (`retryFailIntv`).
pub const RETRY_FAIL_INTERVAL: Duration = Duration::from_secs(15);

/// The base delay before the full sync a new server triggers (`serverUpIntv`).
pub const SERVER_UP_INTERVAL: Duration = Duration::from_secs(3);

/// How long an output-only check change may wait before it is synced (Consul's
/// `check_update_interval` default).
pub const CHECK_UPDATE_INTERVAL: Duration = Duration::from_secs(300);

/// The cluster size up to which syncs are not spread out (`scaleThreshold`).
pub const SCALE_THRESHOLD_NODES: usize = 128;

/// The id of the servers' own service, which the leader manages and anti-entropy
/// never removes (`structs.ConsulServiceID`).
pub const CONSUL_SERVICE_ID: &str = "consul";

/// What an agent holds for its node: the authoritative state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalState {
    /// The agent's node record.
    pub node: NodeInfo,
    /// Its service instances, by id.
    pub services: BTreeMap<String, ServiceDef>,
    /// Its checks, by id (each bound to one of `services`, or node-level).
    pub checks: BTreeMap<String, CheckDef>,
}

/// The multiplier of sync intervals for a cluster of `nodes` (`scaleFactor`): 1 up to
/// [`SCALE_THRESHOLD_NODES`], then `⌈log2(nodes) − 7⌉ + 1` (2 up to 256, 3 up to
/// 512, 4 up to 1024, …).
pub fn scale_factor(nodes: usize) -> u32 {
    if nodes <= SCALE_THRESHOLD_NODES {
        return 1;
    }
    // ⌈log2 n⌉ for n > 1, exactly, in integers.
    let ceil_log2 = usize::BITS - (nodes - 1).leading_zeros();
    let threshold_log2 = SCALE_THRESHOLD_NODES.trailing_zeros();
    ceil_log2 - threshold_log2 + 1
}

/// Uniform in `[0, d)`, 0 for a zero `d` (`lib.RandomStagger`).
pub fn stagger(d: Duration, rng: &mut impl Rng) -> Duration {
    let nanos = u64::try_from(d.as_nanos()).expect("a stagger below 584 years");
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.gen_range(0..nanos))
}

/// `delayer.Jitter(d)`: a stagger of `scale_factor(nodes) · d`.
pub fn jitter(d: Duration, nodes: usize, rng: &mut impl Rng) -> Duration {
    stagger(d * scale_factor(nodes), rng)
}

/// The wait after a full sync before the next one: `interval + jitter(interval)`.
pub fn full_sync_delay(interval: Duration, nodes: usize, rng: &mut impl Rng) -> Duration {
    interval + jitter(interval, nodes, rng)
}

/// The wait before retrying a failed full sync: `15 s + jitter(15 s)`.
pub fn retry_delay(nodes: usize, rng: &mut impl Rng) -> Duration {
    RETRY_FAIL_INTERVAL + jitter(RETRY_FAIL_INTERVAL, nodes, rng)
}

/// The wait before the full sync a new server triggers: `jitter(3 s)`.
pub fn server_up_delay(nodes: usize, rng: &mut impl Rng) -> Duration {
    jitter(SERVER_UP_INTERVAL, nodes, rng)
}

/// How long an output-only change waits before it is marked out of sync:
/// `check_update_interval / 2 + stagger(check_update_interval)`.
pub fn output_sync_delay(check_update_interval: Duration, rng: &mut impl Rng) -> Duration {
    check_update_interval / 2 + stagger(check_update_interval, rng)
}

/// Whether a check update must be synced at once: a status change must; with a
/// nonzero `check_update_interval`, an output-only change waits
/// ([`output_sync_delay`]).
pub fn needs_immediate_sync(update: &CheckUpdate, check_update_interval: Duration) -> bool {
    update.status_changed() || check_update_interval.is_zero()
}

/// The commands that bring the catalog's view of the agent's node (`remote`, `None`
/// if the node is not registered) in line with `local`. Checks named in
/// `output_deferred` compare without their output. See the [module docs](self).
pub fn sync_commands(
    local: &LocalState,
    remote: Option<&NodeServices>,
    output_deferred: &BTreeSet<String>,
) -> Vec<CatalogCommand> {
    let empty_services = BTreeMap::new();
    let empty_checks = BTreeMap::new();
    let (remote_services, remote_checks) = match remote {
        Some(r) => (&r.services, &r.checks),
        None => (&empty_services, &empty_checks),
    };
    let mut commands = Vec::new();
    let name = local.node.name.clone();

    // 1. The node record.
    let mut node_in_sync = remote.is_some_and(|r| r.node.value == local.node);
    if !node_in_sync {
        commands.push(CatalogCommand::Register(Registration {
            node: local.node.clone(),
            skip_node_update: false,
            service: None,
            checks: Vec::new(),
        }));
        node_in_sync = true;
    }

    let checks_in_sync = |id: &str, check: &CheckDef| -> bool {
        let Some(remote) = remote_checks.get(id) else {
            return false;
        };
        if output_deferred.contains(id) {
            remote.value.id == check.id
                && remote.value.service_id == check.service_id
                && remote.value.status == check.status
        } else {
            remote.value == *check
        }
    };
    let mut out_of_sync_checks: BTreeSet<&str> = local
        .checks
        .iter()
        .filter(|(id, check)| !checks_in_sync(id, check))
        .map(|(id, _)| id.as_str())
        .collect();

    // 2. Services, in id order: deletions and registrations interleaved as Consul's
    // one loop over its map does.
    let service_ids: BTreeSet<&String> = local
        .services
        .keys()
        .chain(remote_services.keys())
        .collect();
    for id in service_ids {
        match (local.services.get(id), remote_services.get(id)) {
            (None, Some(_)) if id == CONSUL_SERVICE_ID => {}
            (None, Some(_)) => commands.push(CatalogCommand::DeregisterService {
                node: name.clone(),
                service_id: id.clone(),
            }),
            (Some(service), remote_service) => {
                if remote_service.is_some_and(|r| r.value == *service) {
                    continue;
                }
                let riding: Vec<CheckDef> = local
                    .checks
                    .values()
                    .filter(|c| c.service_id.as_ref() == Some(id))
                    .filter(|c| out_of_sync_checks.contains(c.id.as_str()))
                    .cloned()
                    .collect();
                for check in &riding {
                    out_of_sync_checks.remove(check.id.as_str());
                }
                commands.push(CatalogCommand::Register(Registration {
                    node: local.node.clone(),
                    skip_node_update: node_in_sync,
                    service: Some(service.clone()),
                    checks: riding,
                }));
            }
            (None, None) => unreachable!("an id comes from one side"),
        }
    }

    // 3. Checks, in id order.
    let check_ids: BTreeSet<&String> = local.checks.keys().chain(remote_checks.keys()).collect();
    for id in check_ids {
        match local.checks.get(id) {
            None if id == SERF_CHECK_ID => {}
            None => commands.push(CatalogCommand::DeregisterCheck {
                node: name.clone(),
                check_id: id.clone(),
            }),
            Some(check) if out_of_sync_checks.contains(id.as_str()) => {
                let service = check
                    .service_id
                    .as_ref()
                    .and_then(|sid| local.services.get(sid))
                    .cloned();
                commands.push(CatalogCommand::Register(Registration {
                    node: local.node.clone(),
                    skip_node_update: node_in_sync,
                    service,
                    checks: vec![check.clone()],
                }));
            }
            Some(_) => {}
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::catalog::Catalog;
    use crate::consul::health::Status;
    use crate::raft::StateMachine;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            id: "id-n1".into(),
            address: "10.0.0.1".into(),
        }
    }

    fn service(id: &str) -> ServiceDef {
        ServiceDef {
            id: id.into(),
            name: id.trim_end_matches(char::is_numeric).into(),
            port: 80,
            tags: vec![],
        }
    }

    fn check(id: &str, service_id: Option<&str>, status: Status, output: &str) -> CheckDef {
        CheckDef {
            id: id.into(),
            service_id: service_id.map(str::to_string),
            status,
            output: output.into(),
        }
    }

    fn local() -> LocalState {
        LocalState {
            node: node(),
            services: [("web1".to_string(), service("web1"))].into(),
            checks: [
                (
                    "web1-http".to_string(),
                    check("web1-http", Some("web1"), Status::Passing, "ok"),
                ),
                (
                    "mem".to_string(),
                    check("mem", None, Status::Passing, "fine"),
                ),
            ]
            .into(),
        }
    }

    /// Applies `commands` to `catalog` from index `next`, returning the next index.
    fn apply_all(catalog: &mut Catalog, commands: &[CatalogCommand], mut next: u64) -> u64 {
        for command in commands {
            assert_eq!(catalog.apply(next, command).result, Ok(()), "{command:?}");
            next += 1;
        }
        next
    }

    /// The catalog after a first sync of `local()`, plus the leader's serfHealth.
    fn synced() -> Catalog {
        let mut catalog = Catalog::default();
        let next = apply_all(
            &mut catalog,
            &[CatalogCommand::MemberAlive { node: node() }],
            1,
        );
        let commands = sync_commands(
            &local(),
            catalog.node_services("n1").as_ref(),
            &BTreeSet::new(),
        );
        apply_all(&mut catalog, &commands, next);
        catalog
    }

    #[test]
    fn first_sync_registers_the_service_with_its_checks_atomically() {
        let commands = sync_commands(&local(), None, &BTreeSet::new());
        assert_eq!(commands.len(), 3, "{commands:#?}");
        let CatalogCommand::Register(node_only) = &commands[0] else {
            panic!()
        };
        assert!(node_only.service.is_none() && !node_only.skip_node_update);
        let CatalogCommand::Register(with_service) = &commands[1] else {
            panic!()
        };
        assert_eq!(with_service.service, Some(service("web1")));
        assert_eq!(
            with_service.checks.len(),
            1,
            "the service's check rides along"
        );
        assert!(with_service.skip_node_update);
        let CatalogCommand::Register(node_check) = &commands[2] else {
            panic!()
        };
        assert_eq!(node_check.checks[0].id, "mem");
        assert_eq!(node_check.service, None);
    }

    #[test]
    fn in_sync_needs_nothing_and_keeps_serf_health() {
        let catalog = synced();
        let remote = catalog.node_services("n1").unwrap();
        assert!(remote.checks.contains_key(SERF_CHECK_ID));
        assert_eq!(
            sync_commands(&local(), Some(&remote), &BTreeSet::new()),
            vec![]
        );
    }

    #[test]
    fn catalog_entries_the_agent_lacks_are_deregistered() {
        let mut catalog = synced();
        let next = catalog.index() + 1;
        // Registered straight into the catalog (consul#729): anti-entropy removes it.
        apply_all(
            &mut catalog,
            &[CatalogCommand::Register(Registration {
                node: node(),
                skip_node_update: true,
                service: Some(service("rogue1")),
                checks: vec![
                    check("rogue1-http", Some("rogue1"), Status::Passing, ""),
                    check("disk", None, Status::Passing, ""),
                ],
            })],
            next,
        );
        let remote = catalog.node_services("n1").unwrap();
        let commands = sync_commands(&local(), Some(&remote), &BTreeSet::new());
        assert_eq!(
            commands,
            vec![
                CatalogCommand::DeregisterService {
                    node: "n1".into(),
                    service_id: "rogue1".into()
                },
                CatalogCommand::DeregisterCheck {
                    node: "n1".into(),
                    check_id: "disk".into()
                },
                CatalogCommand::DeregisterCheck {
                    node: "n1".into(),
                    check_id: "rogue1-http".into()
                },
            ]
        );
        let next = catalog.index() + 1;
        apply_all(&mut catalog, &commands, next);
        let remote = catalog.node_services("n1").unwrap();
        assert_eq!(
            sync_commands(&local(), Some(&remote), &BTreeSet::new()),
            vec![]
        );
    }

    #[test]
    fn entries_removed_from_the_catalog_are_re_added() {
        // Deregistered through the catalog while the agent still runs it (#3169).
        let mut catalog = synced();
        let next = catalog.index() + 1;
        apply_all(
            &mut catalog,
            &[CatalogCommand::DeregisterService {
                node: "n1".into(),
                service_id: "web1".into(),
            }],
            next,
        );
        let remote = catalog.node_services("n1").unwrap();
        let commands = sync_commands(&local(), Some(&remote), &BTreeSet::new());
        assert_eq!(commands.len(), 1, "{commands:#?}");
        let CatalogCommand::Register(r) = &commands[0] else {
            panic!()
        };
        assert_eq!(r.service, Some(service("web1")));
        assert_eq!(r.checks, vec![local().checks["web1-http"].clone()]);
    }

    #[test]
    fn a_changed_check_is_registered_alone_with_its_service() {
        let catalog = synced();
        let mut agent = local();
        agent.checks.get_mut("web1-http").unwrap().status = Status::Critical;
        let remote = catalog.node_services("n1").unwrap();
        let commands = sync_commands(&agent, Some(&remote), &BTreeSet::new());
        assert_eq!(
            commands,
            vec![CatalogCommand::Register(Registration {
                node: node(),
                skip_node_update: true,
                service: Some(service("web1")),
                checks: vec![agent.checks["web1-http"].clone()],
            })]
        );
    }

    #[test]
    fn deferred_output_change_alone_needs_no_sync() {
        let catalog = synced();
        let mut agent = local();
        agent.checks.get_mut("mem").unwrap().output = "fine, 41% used".into();
        let remote = catalog.node_services("n1").unwrap();
        let deferred: BTreeSet<String> = ["mem".to_string()].into();
        assert_eq!(sync_commands(&agent, Some(&remote), &deferred), vec![]);
        // Without a running defer timer the output is synced.
        assert_eq!(
            sync_commands(&agent, Some(&remote), &BTreeSet::new()).len(),
            1
        );
        // A status change is synced even while deferred.
        agent.checks.get_mut("mem").unwrap().status = Status::Warning;
        assert_eq!(sync_commands(&agent, Some(&remote), &deferred).len(), 1);
    }

    #[test]
    fn node_record_change_is_synced_first_and_alone() {
        let catalog = synced();
        let mut agent = local();
        agent.node.address = "10.0.0.99".into();
        let remote = catalog.node_services("n1").unwrap();
        let commands = sync_commands(&agent, Some(&remote), &BTreeSet::new());
        assert_eq!(
            commands,
            vec![CatalogCommand::Register(Registration {
                node: agent.node.clone(),
                skip_node_update: false,
                service: None,
                checks: vec![],
            })]
        );
    }

    /// A random valid agent state over a small pool of ids, so that two draws
    /// overlap, differ and conflict.
    fn random_local(rng: &mut ChaCha8Rng) -> LocalState {
        let mut state = LocalState {
            node: node(),
            ..LocalState::default()
        };
        for id in ["a1", "a2", "b1"] {
            if rng.gen_bool(0.6) {
                let mut s = service(id);
                s.port = rng.gen_range(80..82);
                state.services.insert(id.into(), s);
            }
        }
        let service_ids: Vec<String> = state.services.keys().cloned().collect();
        for id in ["c1", "c2", "c3", "c4"] {
            if rng.gen_bool(0.6) {
                let bound = match rng.gen_range(0..=service_ids.len()) {
                    0 => None,
                    i => Some(service_ids[i - 1].as_str()),
                };
                let status =
                    [Status::Passing, Status::Warning, Status::Critical][rng.gen_range(0..3)];
                let output = ["x", "y"][rng.gen_range(0..2)];
                state
                    .checks
                    .insert(id.into(), check(id, bound, status, output));
            }
        }
        state
    }

    #[test]
    fn one_sync_round_makes_the_catalog_equal_the_agent_whatever_it_held() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for round in 0..300 {
            let mut catalog = Catalog::default();
            let mut next = apply_all(
                &mut catalog,
                &[CatalogCommand::MemberAlive { node: node() }],
                1,
            );
            // Whatever an earlier agent state (or an operator) left in the catalog.
            let before = random_local(&mut rng);
            let commands = sync_commands(&before, None, &BTreeSet::new());
            next = apply_all(&mut catalog, &commands, next);
            if rng.gen_bool(0.5) {
                let failed = CatalogCommand::MemberFailed { node: "n1".into() };
                next = apply_all(&mut catalog, &[failed], next);
            }
            let agent = random_local(&mut rng);
            let remote = catalog.node_services("n1");
            let commands = sync_commands(&agent, remote.as_ref(), &BTreeSet::new());
            apply_all(&mut catalog, &commands, next);
            let remote = catalog.node_services("n1").unwrap();
            let services: BTreeMap<String, ServiceDef> = remote
                .services
                .iter()
                .map(|(id, e)| (id.clone(), e.value.clone()))
                .collect();
            let checks: BTreeMap<String, CheckDef> = remote
                .checks
                .iter()
                .filter(|(id, _)| *id != SERF_CHECK_ID)
                .map(|(id, e)| (id.clone(), e.value.clone()))
                .collect();
            assert_eq!(services, agent.services, "round {round}");
            assert_eq!(checks, agent.checks, "round {round}");
            assert!(remote.checks.contains_key(SERF_CHECK_ID), "round {round}");
            let again = sync_commands(&agent, Some(&remote), &BTreeSet::new());
            assert_eq!(again, vec![], "round {round}");
        }
    }

    #[test]
    fn output_only_update_waits_status_change_does_not() {
        let output_only = CheckUpdate {
            previous: Status::Passing,
            status: Status::Passing,
            output: "x".into(),
        };
        let status_change = CheckUpdate {
            previous: Status::Passing,
            status: Status::Critical,
            output: "x".into(),
        };
        assert!(!needs_immediate_sync(&output_only, CHECK_UPDATE_INTERVAL));
        assert!(needs_immediate_sync(&output_only, Duration::ZERO));
        assert!(needs_immediate_sync(&status_change, CHECK_UPDATE_INTERVAL));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let d = output_sync_delay(CHECK_UPDATE_INTERVAL, &mut rng);
            assert!(
                d >= Duration::from_secs(150) && d < Duration::from_secs(450),
                "{d:?}"
            );
        }
    }

    #[test]
    fn scale_factor_doubles_the_interval_each_time_the_cluster_doubles_past_128() {
        assert_eq!(scale_factor(0), 1);
        assert_eq!(scale_factor(1), 1);
        assert_eq!(scale_factor(128), 1);
        assert_eq!(scale_factor(129), 2);
        assert_eq!(scale_factor(256), 2);
        assert_eq!(scale_factor(257), 3);
        assert_eq!(scale_factor(512), 3);
        assert_eq!(scale_factor(1000), 4);
        assert_eq!(scale_factor(1024), 4);
        assert_eq!(
            scale_factor(8192),
            7,
            "the formula, not ae.go's comment (8)"
        );
    }

    #[test]
    fn full_sync_delay_is_interval_plus_a_stagger_of_scale_times_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (nodes, scale) in [(1, 1), (128, 1), (129, 2), (256, 2), (1000, 4)] {
            let mut max = Duration::ZERO;
            let mut min = Duration::MAX;
            for _ in 0..500 {
                let d = full_sync_delay(AE_INTERVAL, nodes, &mut rng);
                max = max.max(d);
                min = min.min(d);
            }
            let upper = AE_INTERVAL * (1 + scale);
            assert!(
                min >= AE_INTERVAL && max < upper,
                "{nodes}: {min:?}..{max:?}"
            );
            // The stagger spans its range: the top quarter is reached.
            assert!(
                max > AE_INTERVAL + AE_INTERVAL * scale * 3 / 4,
                "{nodes}: max {max:?}"
            );
        }
        let d = retry_delay(1, &mut rng);
        assert!(d >= RETRY_FAIL_INTERVAL && d < RETRY_FAIL_INTERVAL * 2);
        assert!(server_up_delay(1000, &mut rng) < SERVER_UP_INTERVAL * 4);
        assert_eq!(stagger(Duration::ZERO, &mut rng), Duration::ZERO);
    }
}

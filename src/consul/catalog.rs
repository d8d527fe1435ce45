//! The servers' catalog as a [`crate::raft::StateMachine`], after Consul's state store
//! (`agent/consul/state/catalog.go`: `ensureRegistrationTxn`, `ensureNodeTxn`,
//! `ensureCheckTxn`, `deleteCheckTxn`, `deleteNodeTxn`, `maxIndexAndWatchChForService`)
//! and the leader's `serfHealth` writes (`agent/consul/leader_registrator_v1.go`:
//! `handleAliveMember`, `handleFailedMember`, `handleLeftMember`).
//!
//! - **Entries.** Nodes (by name), services (by node and service id) and checks (by
//!   node and check id, bound to a service of that node or node-level). Each entry
//!   carries the Raft index that created it (`create_index`) and last changed it
//!   (`modify_index`). A write identical to what is stored changes nothing and bumps
//!   no index (Consul compares with `IsSame` to avoid watch churn).
//! - **Per-service index** (Consul's `service.<name>` index row): the last index at
//!   which anything about service `<name>` changed: an instance registered, changed
//!   or deregistered, one of its checks, or a node-level check or the node record of
//!   a node running it (node checks and node data are part of health answers).
//! - **Extinction index** (`service_last_extinction`): the last index at which some
//!   service lost its last instance. A query for a service with no instance answers
//!   this index, so it wakes when an instance appears... or when any other service
//!   goes extinct.
//! - **Global index**: the last index at which anything in the catalog changed.
//! - **Registration** ([`Registration`], `/v1/catalog/register` and the agent's sync)
//!   is one transaction: the node (created if absent; updated unless
//!   `skip_node_update`), optionally a service, and checks, each bound to the request's
//!   service or to one already on the node. An invalid request changes nothing.
//! - **Deregistration** of a node removes its services and checks; of a service, its
//!   checks; a missing entry is not an error (the store ignores it).
//! - **`serfHealth`.** [`CatalogCommand::MemberAlive`] registers the node with
//!   `serfHealth` passing; [`CatalogCommand::MemberFailed`] sets it critical without
//!   touching the node record, and is ignored for a node not in the catalog;
//!   [`CatalogCommand::MemberLeft`] deregisters the node.
//! - **Health query** ([`CatalogQuery::ServiceHealth`], `/v1/health/service/:name`):
//!   each instance with its node's checks and its own; with `passing_only` an instance
//!   is dropped if *any* of those checks is not passing (warning included:
//!   `filterNonPassing`). The answer's index is the one a blocking query waits on.
//! - **Blocking queries.** [`Catalog::wakes`] says whether a query blocked at
//!   `min_index` returns: on its service's index ([`WakeOn::Service`]), or on the
//!   global index ([`WakeOn::Global`], Consul before per-service indexes: every write
//!   woke every watcher, consul#1244).

use std::collections::{BTreeMap, BTreeSet};

use super::health::{Status, SERF_ALIVE_OUTPUT, SERF_CHECK_ID, SERF_FAILED_OUTPUT};
use crate::fingerprint::Fingerprint;
use crate::raft::StateMachine;

/// A node as registered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node's name (the catalog's key).
    pub name: String,
    /// Its id (a UUID in Consul).
    pub id: String,
    /// Its address.
    pub address: String,
}

/// A service instance as registered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceDef {
    /// The instance's id, unique on its node.
    pub id: String,
    /// The service's name, shared by its instances.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// Its tags.
    pub tags: Vec<String>,
}

/// A check as registered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckDef {
    /// The check's id, unique on its node.
    pub id: String,
    /// The service instance it covers, on the same node (`None`: the whole node).
    pub service_id: Option<String>,
    /// Its status.
    pub status: Status,
    /// Its last output.
    pub output: String,
}

/// A stored entry with its Raft indexes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry<T> {
    /// The entry.
    pub value: T,
    /// The index that created it.
    pub create_index: u64,
    /// The index that last changed it (≥ `create_index`).
    pub modify_index: u64,
}

/// A registration: `/v1/catalog/register`, the agent's anti-entropy and the leader's
/// `serfHealth` writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The node.
    pub node: NodeInfo,
    /// Leave an existing node record as it is (it is still created if absent).
    pub skip_node_update: bool,
    /// A service instance on the node.
    pub service: Option<ServiceDef>,
    /// Checks on the node.
    pub checks: Vec<CheckDef>,
}

/// A state-changing request, applied through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CatalogCommand {
    /// Register a node, optionally a service, and checks, atomically.
    Register(Registration),
    /// Remove a node with its services and checks.
    DeregisterNode {
        /// The node.
        node: String,
    },
    /// Remove a service instance with its checks.
    DeregisterService {
        /// Its node.
        node: String,
        /// The instance.
        service_id: String,
    },
    /// Remove a check.
    DeregisterCheck {
        /// Its node.
        node: String,
        /// The check.
        check_id: String,
    },
    /// Gossip says the member is alive: register it with `serfHealth` passing.
    MemberAlive {
        /// The member's node.
        node: NodeInfo,
    },
    /// Gossip says the member failed: `serfHealth` critical (ignored if the node is
    /// not in the catalog).
    MemberFailed {
        /// The member's node name.
        node: String,
    },
    /// The member left or was reaped: deregister its node.
    MemberLeft {
        /// The member's node name.
        node: String,
    },
}

/// Why a registration was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CatalogError {
    /// A check names a service id that is neither in the request nor on the node
    /// (Consul's `ErrMissingService`).
    MissingService {
        /// The check.
        check_id: String,
        /// The service id it names.
        service_id: String,
    },
    /// Two checks in one request share an id.
    DuplicateCheck(String),
}

/// What applying a command answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CatalogOutput {
    /// The global index after the command.
    pub index: u64,
    /// Whether the command was applied.
    pub result: Result<(), CatalogError>,
}

/// A read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CatalogQuery {
    /// `/v1/health/service/:service`, with `?passing` if `passing_only`.
    ServiceHealth {
        /// The service name.
        service: String,
        /// Only instances whose checks (node checks included) all pass.
        passing_only: bool,
    },
    /// A node's services and checks (what anti-entropy compares the agent's state
    /// with: `Catalog.NodeServiceList` and `Health.NodeChecks`).
    Node {
        /// The node.
        node: String,
    },
}

/// One instance of a service, as `/v1/health/service` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceInstance {
    /// The node it runs on.
    pub node: Entry<NodeInfo>,
    /// The instance.
    pub service: Entry<ServiceDef>,
    /// The node's checks, then the instance's, each in id order.
    pub checks: Vec<Entry<CheckDef>>,
}

/// A node with its services and checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeServices {
    /// The node.
    pub node: Entry<NodeInfo>,
    /// Its service instances, by id.
    pub services: BTreeMap<String, Entry<ServiceDef>>,
    /// Its checks, by id.
    pub checks: BTreeMap<String, Entry<CheckDef>>,
}

/// A read's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CatalogAnswer {
    /// The instances (by node, then instance id) and the index to block on.
    ServiceHealth {
        /// `X-Consul-Index`: see [`Catalog::health_index`].
        index: u64,
        /// The instances.
        instances: Vec<ServiceInstance>,
    },
    /// The node, if registered, and the global index.
    Node {
        /// The global index.
        index: u64,
        /// The node's entries.
        node: Option<NodeServices>,
    },
}

/// Which index a blocking query waits on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WakeOn {
    /// The service's own index ([`Catalog::health_index`]).
    Service(String),
    /// The global index: any write wakes it (consul#1244).
    Global,
}

/// The catalog. See the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    nodes: BTreeMap<String, Entry<NodeInfo>>,
    /// By (node, service id).
    services: BTreeMap<(String, String), Entry<ServiceDef>>,
    /// By (node, check id).
    checks: BTreeMap<(String, String), Entry<CheckDef>>,
    /// `service.<name>` index rows; kept after the last instance goes.
    service_indexes: BTreeMap<String, u64>,
    /// The last index at which a service lost its last instance (0: never).
    extinction_index: u64,
    /// The last index at which anything changed.
    index: u64,
}

impl Catalog {
    /// The global index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Service `name`'s index (0: nothing about it was ever written).
    pub fn service_index(&self, name: &str) -> u64 {
        self.service_indexes.get(name).copied().unwrap_or(0)
    }

    /// The index a health query for `name` answers (`maxIndexAndWatchChForService`):
    /// with instances, the service's index; without, the extinction index if some
    /// service ever went extinct; else the service's index if it has one; else the
    /// global index.
    pub fn health_index(&self, name: &str) -> u64 {
        if !self.has_instances(name) && self.extinction_index != 0 {
            return self.extinction_index;
        }
        match self.service_indexes.get(name) {
            Some(&index) => index,
            None => self.index,
        }
    }

    /// Whether a blocking query that last saw `min_index` returns now: it does if
    /// `min_index` is 0 (not blocking) or the index it waits on is above it.
    pub fn wakes(&self, on: &WakeOn, min_index: u64) -> bool {
        min_index == 0 || self.index_of(on) > min_index
    }

    /// The index a blocking query waiting `on` compares with its minimum.
    pub fn index_of(&self, on: &WakeOn) -> u64 {
        match on {
            WakeOn::Service(name) => self.health_index(name),
            WakeOn::Global => self.index,
        }
    }

    /// The names of the registered nodes, in order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.nodes.keys().map(String::as_str)
    }

    /// The services that have an index row (every service ever written), with
    /// their index, in name order.
    pub fn service_indexes(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.service_indexes.iter().map(|(n, &i)| (n.as_str(), i))
    }

    /// A node's record.
    pub fn node(&self, name: &str) -> Option<&Entry<NodeInfo>> {
        self.nodes.get(name)
    }

    /// A check on `node`.
    pub fn check(&self, node: &str, check_id: &str) -> Option<&Entry<CheckDef>> {
        self.checks.get(&(node.to_string(), check_id.to_string()))
    }

    /// The instances of service `name` (only those passing every check if
    /// `passing_only`), by node then instance id.
    pub fn service_health(&self, name: &str, passing_only: bool) -> Vec<ServiceInstance> {
        self.services
            .iter()
            .filter(|(_, s)| s.value.name == name)
            .map(|((node, service_id), service)| {
                let checks = self
                    .node_checks(node)
                    .filter(|c| {
                        c.value.service_id.is_none()
                            || c.value.service_id.as_deref() == Some(service_id.as_str())
                    })
                    .cloned();
                let (node_checks, service_checks): (Vec<_>, Vec<_>) =
                    checks.partition(|c| c.value.service_id.is_none());
                ServiceInstance {
                    node: self.nodes[node].clone(),
                    service: service.clone(),
                    checks: node_checks.into_iter().chain(service_checks).collect(),
                }
            })
            .filter(|instance| {
                !passing_only
                    || instance
                        .checks
                        .iter()
                        .all(|c| c.value.status == Status::Passing)
            })
            .collect()
    }

    /// `node`'s record, services and checks.
    pub fn node_services(&self, node: &str) -> Option<NodeServices> {
        let entry = self.nodes.get(node)?;
        Some(NodeServices {
            node: entry.clone(),
            services: self
                .node_service_entries(node)
                .map(|s| (s.value.id.clone(), s.clone()))
                .collect(),
            checks: self
                .node_checks(node)
                .map(|c| (c.value.id.clone(), c.clone()))
                .collect(),
        })
    }

    fn has_instances(&self, name: &str) -> bool {
        self.services.values().any(|s| s.value.name == name)
    }

    fn node_service_entries<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = &'a Entry<ServiceDef>> + 'a {
        self.services
            .range((node.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == node)
            .map(|(_, s)| s)
    }

    fn node_checks<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Entry<CheckDef>> + 'a {
        self.checks
            .range((node.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == node)
            .map(|(_, c)| c)
    }

    /// Marks a change at `index`.
    fn touch(&mut self, index: u64) {
        assert!(index >= self.index, "indexes never go back");
        self.index = index;
    }

    fn bump_service(&mut self, name: &str, index: u64) {
        self.service_indexes.insert(name.to_string(), index);
        self.touch(index);
    }

    /// `updateAllServiceIndexesOfNode`.
    fn bump_node_services(&mut self, node: &str, index: u64) {
        let names: BTreeSet<String> = self
            .node_service_entries(node)
            .map(|s| s.value.name.clone())
            .collect();
        for name in names {
            self.bump_service(&name, index);
        }
        self.touch(index);
    }

    fn validate(&self, r: &Registration) -> Result<(), CatalogError> {
        let mut seen = BTreeSet::new();
        for check in &r.checks {
            if !seen.insert(check.id.as_str()) {
                return Err(CatalogError::DuplicateCheck(check.id.clone()));
            }
            let Some(service_id) = &check.service_id else {
                continue;
            };
            let in_request = r.service.as_ref().is_some_and(|s| &s.id == service_id);
            let on_node = self
                .services
                .contains_key(&(r.node.name.clone(), service_id.clone()));
            if !in_request && !on_node {
                return Err(CatalogError::MissingService {
                    check_id: check.id.clone(),
                    service_id: service_id.clone(),
                });
            }
        }
        Ok(())
    }

    fn register(&mut self, index: u64, r: &Registration) -> Result<(), CatalogError> {
        self.validate(r)?;
        let name = r.node.name.clone();
        match self.nodes.get_mut(&name) {
            None => {
                self.nodes.insert(
                    name.clone(),
                    Entry {
                        value: r.node.clone(),
                        create_index: index,
                        modify_index: index,
                    },
                );
                self.touch(index);
            }
            Some(existing) if !r.skip_node_update && existing.value != r.node => {
                existing.value = r.node.clone();
                existing.modify_index = index;
                self.bump_node_services(&name, index);
            }
            Some(_) => {}
        }
        if let Some(service) = &r.service {
            self.ensure_service(index, &name, service);
        }
        for check in &r.checks {
            self.ensure_check(index, &name, check);
        }
        Ok(())
    }

    fn ensure_service(&mut self, index: u64, node: &str, service: &ServiceDef) {
        let key = (node.to_string(), service.id.clone());
        let old_name = match self.services.get_mut(&key) {
            Some(existing) if existing.value == *service => return,
            Some(existing) => {
                let old = std::mem::replace(&mut existing.value, service.clone());
                existing.modify_index = index;
                Some(old.name)
            }
            None => {
                self.services.insert(
                    key,
                    Entry {
                        value: service.clone(),
                        create_index: index,
                        modify_index: index,
                    },
                );
                None
            }
        };
        self.bump_service(&service.name, index);
        if let Some(old) = old_name.filter(|old| *old != service.name) {
            self.bump_service(&old, index);
            if !self.has_instances(&old) {
                self.extinction_index = index;
            }
        }
    }

    fn ensure_check(&mut self, index: u64, node: &str, check: &CheckDef) {
        let key = (node.to_string(), check.id.clone());
        match self.checks.get_mut(&key) {
            Some(existing) if existing.value == *check => return,
            Some(existing) => {
                existing.value = check.clone();
                existing.modify_index = index;
            }
            None => {
                self.checks.insert(
                    key,
                    Entry {
                        value: check.clone(),
                        create_index: index,
                        modify_index: index,
                    },
                );
            }
        }
        self.bump_for_check(index, node, check.service_id.as_deref());
    }

    /// A check on `node` changed: its service's index, or every service of the node
    /// for a node-level check.
    fn bump_for_check(&mut self, index: u64, node: &str, service_id: Option<&str>) {
        match service_id {
            Some(id) => {
                let name = self.services[&(node.to_string(), id.to_string())]
                    .value
                    .name
                    .clone();
                self.bump_service(&name, index);
            }
            None => self.bump_node_services(node, index),
        }
    }

    fn deregister_check(&mut self, index: u64, node: &str, check_id: &str) {
        let key = (node.to_string(), check_id.to_string());
        if let Some(check) = self.checks.get(&key) {
            let service_id = check.value.service_id.clone();
            self.bump_for_check(index, node, service_id.as_deref());
            self.checks.remove(&key);
        }
    }

    fn deregister_service(&mut self, index: u64, node: &str, service_id: &str) {
        let key = (node.to_string(), service_id.to_string());
        let Some(service) = self.services.remove(&key) else {
            return;
        };
        self.checks
            .retain(|(n, _), c| !(n == node && c.value.service_id.as_deref() == Some(service_id)));
        self.bump_service(&service.value.name, index);
        if !self.has_instances(&service.value.name) {
            self.extinction_index = index;
        }
    }

    fn deregister_node(&mut self, index: u64, node: &str) {
        if !self.nodes.contains_key(node) {
            return;
        }
        let ids: Vec<String> = self
            .node_service_entries(node)
            .map(|s| s.value.id.clone())
            .collect();
        for id in ids {
            self.deregister_service(index, node, &id);
        }
        self.checks.retain(|(n, _), _| n != node);
        self.nodes.remove(node);
        self.touch(index);
    }

    fn serf_check(status: Status) -> CheckDef {
        CheckDef {
            id: SERF_CHECK_ID.to_string(),
            service_id: None,
            status,
            output: match status {
                Status::Passing => SERF_ALIVE_OUTPUT,
                _ => SERF_FAILED_OUTPUT,
            }
            .to_string(),
        }
    }
}

impl StateMachine for Catalog {
    type Command = CatalogCommand;
    type Output = CatalogOutput;
    type Query = CatalogQuery;
    type Answer = CatalogAnswer;
    type Snapshot = Catalog;

    fn apply(&mut self, index: u64, command: &CatalogCommand) -> CatalogOutput {
        assert!(
            index > self.index,
            "apply index {index} not above {}",
            self.index
        );
        let result = match command {
            CatalogCommand::Register(r) => self.register(index, r),
            CatalogCommand::DeregisterNode { node } | CatalogCommand::MemberLeft { node } => {
                self.deregister_node(index, node);
                Ok(())
            }
            CatalogCommand::DeregisterService { node, service_id } => {
                self.deregister_service(index, node, service_id);
                Ok(())
            }
            CatalogCommand::DeregisterCheck { node, check_id } => {
                self.deregister_check(index, node, check_id);
                Ok(())
            }
            CatalogCommand::MemberAlive { node } => self.register(
                index,
                &Registration {
                    node: node.clone(),
                    skip_node_update: false,
                    service: None,
                    checks: vec![Catalog::serf_check(Status::Passing)],
                },
            ),
            CatalogCommand::MemberFailed { node } => match self.nodes.get(node) {
                None => Ok(()),
                Some(entry) => {
                    let registration = Registration {
                        node: entry.value.clone(),
                        skip_node_update: true,
                        service: None,
                        checks: vec![Catalog::serf_check(Status::Critical)],
                    };
                    self.register(index, &registration)
                }
            },
        };
        CatalogOutput {
            index: self.index,
            result,
        }
    }

    fn read(&self, _applied_index: u64, query: &CatalogQuery) -> CatalogAnswer {
        match query {
            CatalogQuery::ServiceHealth {
                service,
                passing_only,
            } => CatalogAnswer::ServiceHealth {
                index: self.health_index(service),
                instances: self.service_health(service, *passing_only),
            },
            CatalogQuery::Node { node } => CatalogAnswer::Node {
                index: self.index,
                node: self.node_services(node),
            },
        }
    }

    fn snapshot(&self) -> Catalog {
        self.clone()
    }

    fn restore(snapshot: &Catalog) -> Catalog {
        snapshot.clone()
    }

    fn command_size_bytes(command: &CatalogCommand) -> usize {
        let node = |n: &NodeInfo| n.name.len() + n.id.len() + n.address.len();
        let service = |s: &ServiceDef| {
            s.id.len() + s.name.len() + 2 + s.tags.iter().map(String::len).sum::<usize>()
        };
        let check = |c: &CheckDef| {
            c.id.len() + c.service_id.as_ref().map_or(0, String::len) + 1 + c.output.len()
        };
        match command {
            CatalogCommand::Register(r) => {
                8 + node(&r.node)
                    + r.service.as_ref().map_or(0, service)
                    + r.checks.iter().map(check).sum::<usize>()
            }
            CatalogCommand::DeregisterNode { node }
            | CatalogCommand::MemberFailed { node }
            | CatalogCommand::MemberLeft { node } => 8 + node.len(),
            CatalogCommand::DeregisterService { node, service_id } => {
                8 + node.len() + service_id.len()
            }
            CatalogCommand::DeregisterCheck { node, check_id } => 8 + node.len() + check_id.len(),
            CatalogCommand::MemberAlive { node: n } => 8 + node(n),
        }
    }

    fn snapshot_size_bytes(snapshot: &Catalog) -> usize {
        snapshot.nodes.len() * 64
            + snapshot.services.len() * 64
            + snapshot.checks.len() * 96
            + snapshot.service_indexes.len() * 24
    }
}

crate::impl_fingerprint!(struct NodeInfo { name, id, address });
crate::impl_fingerprint!(struct ServiceDef { id, name, port, tags });
crate::impl_fingerprint!(struct CheckDef { id, service_id, status, output });
crate::impl_fingerprint!(<T: Fingerprint> struct Entry { value, create_index, modify_index });
crate::impl_fingerprint!(struct Registration { node, skip_node_update, service, checks });
crate::impl_fingerprint!(enum CatalogCommand {
    0 => Register(registration),
    1 => DeregisterNode { node },
    2 => DeregisterService { node, service_id },
    3 => DeregisterCheck { node, check_id },
    4 => MemberAlive { node },
    5 => MemberFailed { node },
    6 => MemberLeft { node },
});
crate::impl_fingerprint!(enum CatalogError {
    0 => MissingService { check_id, service_id },
    1 => DuplicateCheck(check_id),
});
crate::impl_fingerprint!(struct CatalogOutput { index, result });
crate::impl_fingerprint!(enum CatalogQuery {
    0 => ServiceHealth { service, passing_only },
    1 => Node { node },
});
crate::impl_fingerprint!(struct ServiceInstance { node, service, checks });
crate::impl_fingerprint!(struct NodeServices { node, services, checks });
crate::impl_fingerprint!(enum CatalogAnswer {
    0 => ServiceHealth { index, instances },
    1 => Node { index, node },
});

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            id: format!("id-{name}"),
            address: format!("10.0.0.{}", name.len()),
        }
    }

    fn service(id: &str, name: &str) -> ServiceDef {
        ServiceDef {
            id: id.into(),
            name: name.into(),
            port: 8080,
            tags: vec![],
        }
    }

    fn check(id: &str, service_id: Option<&str>, status: Status) -> CheckDef {
        CheckDef {
            id: id.into(),
            service_id: service_id.map(str::to_string),
            status,
            output: String::new(),
        }
    }

    fn register(n: &str, s: Option<ServiceDef>, checks: Vec<CheckDef>) -> CatalogCommand {
        CatalogCommand::Register(Registration {
            node: node(n),
            skip_node_update: false,
            service: s,
            checks,
        })
    }

    /// A catalog with `web` on n1 and n2 and `db` on n3, each with a passing service
    /// check and a passing serfHealth, at indexes 1..=6.
    fn cluster() -> Catalog {
        let mut c = Catalog::default();
        let mut index = 0;
        for (n, id, name) in [
            ("n1", "web1", "web"),
            ("n2", "web2", "web"),
            ("n3", "db1", "db"),
        ] {
            index += 1;
            let out = c.apply(index, &CatalogCommand::MemberAlive { node: node(n) });
            assert_eq!(out.result, Ok(()));
            index += 1;
            let cmd = register(
                n,
                Some(service(id, name)),
                vec![check(&format!("{id}-http"), Some(id), Status::Passing)],
            );
            assert_eq!(c.apply(index, &cmd).result, Ok(()));
        }
        c
    }

    fn instances(c: &Catalog, name: &str, passing_only: bool) -> Vec<String> {
        c.service_health(name, passing_only)
            .into_iter()
            .map(|i| i.service.value.id)
            .collect()
    }

    #[test]
    fn entries_carry_create_and_modify_index() {
        let mut c = cluster();
        let web1 = &c.node_services("n1").unwrap().services["web1"];
        assert_eq!((web1.create_index, web1.modify_index), (2, 2));
        let mut changed = service("web1", "web");
        changed.port = 9090;
        c.apply(10, &register("n1", Some(changed), vec![]));
        let web1 = &c.node_services("n1").unwrap().services["web1"];
        assert_eq!((web1.create_index, web1.modify_index), (2, 10));
        assert_eq!(
            c.node("n1").unwrap().modify_index,
            1,
            "the node did not change"
        );
    }

    #[test]
    fn identical_write_bumps_no_index() {
        let mut c = cluster();
        let before = c.clone();
        let out = c.apply(
            10,
            &register(
                "n1",
                Some(service("web1", "web")),
                vec![check("web1-http", Some("web1"), Status::Passing)],
            ),
        );
        assert_eq!(
            out,
            CatalogOutput {
                index: 6,
                result: Ok(())
            }
        );
        assert_eq!(c, before);
    }

    #[test]
    fn service_index_follows_only_that_service() {
        let mut c = cluster();
        assert_eq!(
            (c.service_index("web"), c.service_index("db"), c.index()),
            (4, 6, 6)
        );
        // A db check changes: db's index moves, web's does not.
        let cmd = register(
            "n3",
            None,
            vec![check("db1-http", Some("db1"), Status::Critical)],
        );
        c.apply(7, &cmd);
        assert_eq!(
            (c.service_index("web"), c.service_index("db"), c.index()),
            (4, 7, 7)
        );
    }

    #[test]
    fn node_level_check_bumps_every_service_of_its_node() {
        let mut c = cluster();
        c.apply(7, &register("n1", Some(service("api1", "api")), vec![]));
        c.apply(8, &CatalogCommand::MemberFailed { node: "n1".into() });
        assert_eq!(c.service_index("web"), 8);
        assert_eq!(c.service_index("api"), 8);
        assert_eq!(c.service_index("db"), 6);
    }

    #[test]
    fn node_record_change_bumps_its_services() {
        let mut c = cluster();
        let mut moved = node("n3");
        moved.address = "10.9.9.9".into();
        c.apply(7, &CatalogCommand::MemberAlive { node: moved });
        assert_eq!(c.node("n3").unwrap().modify_index, 7);
        assert_eq!(c.service_index("db"), 7);
        assert_eq!(c.service_index("web"), 4);
    }

    #[test]
    fn deregistering_a_service_bumps_its_index_and_removes_its_checks() {
        let mut c = cluster();
        let out = c.apply(
            7,
            &CatalogCommand::DeregisterService {
                node: "n1".into(),
                service_id: "web1".into(),
            },
        );
        assert_eq!(out.index, 7);
        assert_eq!(c.service_index("web"), 7);
        assert_eq!(c.health_index("web"), 7);
        assert!(c.check("n1", "web1-http").is_none());
        assert!(c.check("n1", SERF_CHECK_ID).is_some(), "node checks stay");
        assert_eq!(instances(&c, "web", false), vec!["web2"]);
    }

    #[test]
    fn deregistering_a_check_bumps_its_service_index() {
        let mut c = cluster();
        c.apply(
            7,
            &CatalogCommand::DeregisterCheck {
                node: "n2".into(),
                check_id: "web2-http".into(),
            },
        );
        assert_eq!(c.service_index("web"), 7);
        assert_eq!(c.service_index("db"), 6);
    }

    #[test]
    fn last_instance_gone_answers_the_extinction_index() {
        let mut c = cluster();
        let dereg = |id: &str, n: &str| CatalogCommand::DeregisterService {
            node: n.into(),
            service_id: id.into(),
        };
        c.apply(7, &dereg("db1", "n3"));
        assert_eq!(c.health_index("db"), 7);
        // Another service going extinct moves it too (Consul's shared extinction index).
        c.apply(8, &dereg("web1", "n1"));
        c.apply(9, &dereg("web2", "n2"));
        assert_eq!(c.health_index("db"), 9);
        assert_eq!(c.service_index("db"), 7);
    }

    #[test]
    fn member_failed_sets_serf_health_critical_without_touching_the_node() {
        let mut c = cluster();
        c.apply(7, &CatalogCommand::MemberFailed { node: "n2".into() });
        let serf = c.check("n2", SERF_CHECK_ID).unwrap();
        assert_eq!(serf.value.status, Status::Critical);
        assert_eq!(serf.value.output, SERF_FAILED_OUTPUT);
        assert_eq!(serf.modify_index, 7);
        assert_eq!(c.node("n2").unwrap().modify_index, 3);
        // Unknown node: ignored.
        let out = c.apply(8, &CatalogCommand::MemberFailed { node: "zz".into() });
        assert_eq!(
            out,
            CatalogOutput {
                index: 7,
                result: Ok(())
            }
        );
        assert!(c.node("zz").is_none());
        // Alive again: passing.
        c.apply(9, &CatalogCommand::MemberAlive { node: node("n2") });
        assert_eq!(
            c.check("n2", SERF_CHECK_ID).unwrap().value.status,
            Status::Passing
        );
    }

    #[test]
    fn member_left_deregisters_the_node_and_everything_on_it() {
        let mut c = cluster();
        c.apply(7, &CatalogCommand::MemberLeft { node: "n1".into() });
        assert!(c.node_services("n1").is_none());
        assert!(c.check("n1", SERF_CHECK_ID).is_none());
        assert_eq!(c.service_index("web"), 7);
        assert_eq!(instances(&c, "web", false), vec!["web2"]);
    }

    #[test]
    fn passing_filter_drops_an_instance_whose_node_check_is_critical() {
        let mut c = cluster();
        c.apply(7, &CatalogCommand::MemberFailed { node: "n1".into() });
        assert_eq!(instances(&c, "web", false), vec!["web1", "web2"]);
        assert_eq!(instances(&c, "web", true), vec!["web2"]);
        let all = c.service_health("web", false);
        let ids: Vec<&str> = all[0].checks.iter().map(|c| c.value.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![SERF_CHECK_ID, "web1-http"],
            "node checks, then the instance's"
        );
    }

    #[test]
    fn passing_filter_drops_warning_too() {
        let mut c = cluster();
        c.apply(
            7,
            &register(
                "n2",
                None,
                vec![check("web2-http", Some("web2"), Status::Warning)],
            ),
        );
        assert_eq!(instances(&c, "web", true), vec!["web1"]);
    }

    #[test]
    fn passing_filter_ignores_checks_of_other_services_on_the_node() {
        let mut c = cluster();
        c.apply(7, &register("n1", Some(service("api1", "api")), vec![]));
        c.apply(
            8,
            &register(
                "n1",
                None,
                vec![check("api1-http", Some("api1"), Status::Critical)],
            ),
        );
        assert_eq!(instances(&c, "web", true), vec!["web1", "web2"]);
        assert_eq!(instances(&c, "api", true), Vec::<String>::new());
    }

    #[test]
    fn check_for_an_unknown_service_is_refused_and_changes_nothing() {
        let mut c = cluster();
        let before = c.clone();
        let out = c.apply(
            7,
            &register(
                "n4",
                Some(service("x1", "x")),
                vec![
                    check("x1-http", Some("x1"), Status::Passing),
                    check("bad", Some("nope"), Status::Passing),
                ],
            ),
        );
        assert_eq!(
            out.result,
            Err(CatalogError::MissingService {
                check_id: "bad".into(),
                service_id: "nope".into()
            })
        );
        assert_eq!(c, before, "a refused registration is atomic");
    }

    #[test]
    fn skip_node_update_keeps_the_node_record() {
        let mut c = cluster();
        let mut moved = node("n1");
        moved.address = "10.9.9.9".into();
        c.apply(
            7,
            &CatalogCommand::Register(Registration {
                node: moved,
                skip_node_update: true,
                service: None,
                checks: vec![check("extra", None, Status::Passing)],
            }),
        );
        assert_eq!(c.node("n1").unwrap().value, node("n1"));
    }

    #[test]
    fn per_service_blocking_sleeps_through_unrelated_writes() {
        let mut c = cluster();
        let CatalogAnswer::ServiceHealth { index, .. } = c.read(
            6,
            &CatalogQuery::ServiceHealth {
                service: "web".into(),
                passing_only: true,
            },
        ) else {
            unreachable!()
        };
        assert_eq!(index, 4);
        let web = WakeOn::Service("web".into());
        assert!(!c.wakes(&web, index));
        assert!(c.wakes(&web, 0), "index 0 never blocks");
        // A db write: the global watcher wakes (consul#1244), the per-service one not.
        c.apply(
            7,
            &register(
                "n3",
                None,
                vec![check("db1-http", Some("db1"), Status::Critical)],
            ),
        );
        assert!(!c.wakes(&web, index));
        assert!(c.wakes(&WakeOn::Global, 6));
        // A web write wakes it.
        c.apply(
            8,
            &register(
                "n2",
                None,
                vec![check("web2-http", Some("web2"), Status::Critical)],
            ),
        );
        assert!(c.wakes(&web, index));
    }

    #[test]
    fn deregistration_wakes_the_service_watcher() {
        let mut c = cluster();
        let web = WakeOn::Service("web".into());
        let seen = c.health_index("web");
        c.apply(7, &CatalogCommand::DeregisterNode { node: "n2".into() });
        assert!(c.wakes(&web, seen));
        assert!(!c.wakes(&WakeOn::Service("db".into()), c.health_index("db")));
    }

    #[test]
    fn snapshot_restores_an_equal_catalog() {
        let c = cluster();
        assert_eq!(Catalog::restore(&c.snapshot()), c);
    }
}

//! Service discovery, sans-IO: what a *caller* holds (a cache of the registry and a
//! selector that picks an instance per call), what an *instance* does to stay
//! registered (a profile), and the figures a run's discovery log yields.
//!
//! The parts are pure and driven from a process's handlers; the registry itself
//! (etcd's store, lessor and watch, or a Consul-like catalog) and the transport
//! belong to the simulated nodes that use them.
//!
//! - [`calls`]: a caller's calls: the pick, the attempt timeout, the profile's
//!   retries, the outcomes.
//! - [`selector`]: a caller's endpoint set and how it picks an instance per call,
//!   random or round robin, with optional ejection of failing instances.
//! - [`cache`]: a caller's view of the registry, fed by full reads and watch events:
//!   go-micro's registry cache (a TTL per service, stale entries served on a registry
//!   error) or etcd's naming resolver (exactly the set the watch delivered).
//! - [`profile`]: the client settings of etcd's naming packages and of go-micro, with
//!   their defaults as found in the sources.
//! - [`roles`]: the checks of a run's servers, instances and callers.
//! - [`recorder`]: what a protocol's checker sees of nodes, registrations and
//!   calls, turned into the log [`metrics`] judges.
//! - [`metrics`]: a neutral log of what happened ([`DiscoveryLog`]) and the figures
//!   computed from it: removal latency, failed calls, calls to dead instances,
//!   registrations expired under a live owner.
//!
//! Instances and callers are simulated nodes, named by their [`NodeId`].
//!
//! Production failure modes this models: callers dialling a stopped instance for
//! 45–60 s (go-micro#2805), stale nodes after a restart (go-micro#244), a registry
//! outage failing every call once the cache TTL passed (go-micro#526, answered by
//! serving the stale cache, go-micro#215 and PR #217), errors never ejecting a node
//! because go-micro's `Mark` does nothing.

pub mod cache;
pub mod calls;
pub mod metrics;
pub mod profile;
pub mod recorder;
pub mod roles;
pub mod selector;

use crate::NodeId;

/// A service instance: the node that serves it.
pub type InstanceId = NodeId;

/// A caller: the node that looks instances up and calls them.
pub type CallerId = NodeId;

pub use cache::{CacheConfig, CacheMode, Lookup, RegistryCache, StaleReason, WatchEvent};
pub use metrics::{CallOutcome, DiscoveryLog, DownKind};
pub use profile::{
    CallerProfile, DiscoveryProfile, InstanceProfile, Registration, RetryOn, UnknownProfile,
};
pub use selector::{NoInstance, Selector, SelectorConfig, Strategy};

//! A caller's view of the registry, per service, in one of two modes.
//!
//! **[`CacheMode::Ttl`]: go-micro's registry cache** (`registry/cache/cache.go`),
//! which its default selector reads on every call:
//!
//! - **TTL.** Each service's entry expires `ttl_ms` after it was last written
//!   (`set`: `ttls[service] = time.Now().Add(c.opts.TTL)`; `DefaultTTL =
//!   time.Minute`). Within it, and non-empty, it is served as it is (`isValid`); an
//!   empty or expired entry sends the caller to the registry.
//! - **Full reads** ([`RegistryCache::full_read`]) replace the entry and restart its
//!   TTL, and clear the registry-error status (`get`: `c.setStatus(nil)`, `c.set`).
//! - **Watch events** ([`RegistryCache::apply`]) add, update or remove one instance
//!   of a service that has an entry already, and restart its TTL; events for
//!   services never read are dropped (`update`: "we're not going to cache anything
//!   unless there was already a lookup").
//! - **Registry errors** ([`RegistryCache::registry_error`]: a failed read, or a
//!   broken watch, `run` → `c.setStatus(err)`) put the whole cache in an error
//!   state, until the next successful full read. In it, an expired entry is still
//!   served, as stale (`get`: "return the stale cache"; go-micro#215, PR #217), and
//!   removing an entry's last instance is ignored (`del`: "don't blow away cache in
//!   error state"). With `stale_on_error` off, an expired entry is not served during
//!   a registry error: the lookup fails, as go-micro#526 describes.
//!
//! **[`CacheMode::Watch`]: etcd's naming resolver** (`client/v3/naming/resolver/
//! resolver.go`, `watch`): no TTL and no error state; the set is exactly what the
//! initial read and the watch delivered (`allUps[up.Key] = up` on `Add`,
//! `delete(allUps, up.Key)` on `Delete`). Events for a service never read create
//! its entry. A broken watch leaves the set as it is until the watch resumes.
//!
//! Instances are ids only: go-micro's service versions and node metadata are left
//! out. Time is a monotonic [`Duration`] passed in by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use super::InstanceId;

/// The most services a cache holds; [`RegistryCache::full_read`] asserts it.
pub const MAX_SERVICES: usize = 1024;

/// How a cache keeps its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// go-micro's registry cache: entries expire `ttl_ms` after their last write.
    Ttl,
    /// etcd's naming resolver: the set the watch delivered, never expiring.
    Watch,
}

/// A cache's settings: in a scenario's TOML, `mode = "ttl" | "watch"`, `ttl-ms`,
/// `stale-on-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheConfig {
    /// TTL entries or the watch's set.
    pub mode: CacheMode,
    /// How long an entry is fresh after its last write, in ms (TTL mode; > 0).
    #[serde(default)]
    pub ttl_ms: u64,
    /// During a registry error, serve expired entries as stale (go-micro) rather
    /// than fail (TTL mode).
    #[serde(default)]
    pub stale_on_error: bool,
}

impl CacheConfig {
    /// go-micro's cache: TTL 60 s (`registry/cache/cache.go`, `DefaultTTL =
    /// time.Minute`), stale entries served on a registry error.
    pub fn go_micro() -> Self {
        CacheConfig {
            mode: CacheMode::Ttl,
            ttl_ms: 60_000,
            stale_on_error: true,
        }
    }

    /// etcd's naming resolver: the watch's set.
    pub fn etcd_resolver() -> Self {
        CacheConfig {
            mode: CacheMode::Watch,
            ttl_ms: 0,
            stale_on_error: false,
        }
    }
}

/// One instance's change, as a registry watch delivers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchEvent {
    /// Registered or updated (go-micro's `create` / `update`, etcd's `Add`).
    Put(InstanceId),
    /// Deregistered or expired (go-micro's `delete`, etcd's `Delete`).
    Delete(InstanceId),
}

/// Why a lookup answered an entry that is not fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StaleReason {
    /// The TTL passed and no registry error is known: read the registry again.
    Expired,
    /// The TTL passed during a registry error, and `stale_on_error` serves it.
    RegistryError,
}

/// What a cache knows of a service at some time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Within its TTL (or, in watch mode, whatever the watch delivered, maybe empty).
    Fresh(&'a BTreeSet<InstanceId>),
    /// An expired, non-empty entry (TTL mode).
    Stale {
        /// The instances last known.
        endpoints: &'a BTreeSet<InstanceId>,
        /// Expired only, or expired and served because of a registry error.
        reason: StaleReason,
    },
    /// Nothing to serve: never read, read empty (TTL mode), or expired during a
    /// registry error with `stale_on_error` off.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    endpoints: BTreeSet<InstanceId>,
    /// When it stops being fresh (TTL mode).
    expires: Duration,
}

/// A caller's cache of the registry, per service name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryCache {
    config: CacheConfig,
    entries: BTreeMap<String, Entry>,
    /// A registry read or watch failed since the last successful full read (TTL mode).
    in_error: bool,
}

impl RegistryCache {
    /// An empty cache.
    ///
    /// Panics in TTL mode with `ttl_ms == 0`.
    pub fn new(config: CacheConfig) -> Self {
        if config.mode == CacheMode::Ttl {
            assert!(config.ttl_ms > 0, "a TTL cache needs ttl_ms > 0");
        }
        RegistryCache {
            config,
            entries: BTreeMap::new(),
            in_error: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Whether a registry error is known and not yet cleared by a full read.
    pub fn in_error(&self) -> bool {
        self.in_error
    }

    /// When `service`'s entry stops being fresh (TTL mode, with an entry), so that a
    /// caller may set a timer.
    pub fn expires_at(&self, service: &str) -> Option<Duration> {
        match self.config.mode {
            CacheMode::Ttl => self.entries.get(service).map(|e| e.expires),
            CacheMode::Watch => None,
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.config.ttl_ms)
    }

    /// What the cache answers for `service` at `now`; see [`Lookup`].
    pub fn get(&self, service: &str, now: Duration) -> Lookup<'_> {
        let Some(entry) = self.entries.get(service) else {
            return Lookup::Missing;
        };
        match self.config.mode {
            CacheMode::Watch => Lookup::Fresh(&entry.endpoints),
            CacheMode::Ttl if entry.endpoints.is_empty() => Lookup::Missing,
            CacheMode::Ttl if now < entry.expires => Lookup::Fresh(&entry.endpoints),
            CacheMode::Ttl if !self.in_error => Lookup::Stale {
                endpoints: &entry.endpoints,
                reason: StaleReason::Expired,
            },
            CacheMode::Ttl if self.config.stale_on_error => Lookup::Stale {
                endpoints: &entry.endpoints,
                reason: StaleReason::RegistryError,
            },
            CacheMode::Ttl => Lookup::Missing,
        }
    }

    /// A successful full read of `service` at `now` (a registry `GetService`, or
    /// etcd's prefix `Get`): replaces its entry, restarts its TTL and clears the
    /// registry-error status.
    ///
    /// Panics if it would hold more than [`MAX_SERVICES`] services.
    pub fn full_read(&mut self, service: &str, endpoints: BTreeSet<InstanceId>, now: Duration) {
        assert!(
            self.entries.contains_key(service) || self.entries.len() < MAX_SERVICES,
            "a registry cache holds at most {MAX_SERVICES} services"
        );
        self.in_error = false;
        let expires = now + self.ttl();
        self.entries
            .insert(service.to_owned(), Entry { endpoints, expires });
    }

    /// A failed registry read or a broken watch (TTL mode: enters the error state;
    /// watch mode: nothing changes).
    pub fn registry_error(&mut self) {
        if self.config.mode == CacheMode::Ttl {
            self.in_error = true;
        }
    }

    /// A watch event for `service` at `now`; returns whether its set changed. See
    /// the module docs for which events each mode keeps.
    pub fn apply(&mut self, service: &str, event: WatchEvent, now: Duration) -> bool {
        let ttl = self.ttl();
        match self.config.mode {
            CacheMode::Watch => {
                if !self.entries.contains_key(service) {
                    assert!(
                        self.entries.len() < MAX_SERVICES,
                        "a registry cache holds at most {MAX_SERVICES} services"
                    );
                }
                let entry = self
                    .entries
                    .entry(service.to_owned())
                    .or_insert_with(|| Entry {
                        endpoints: BTreeSet::new(),
                        expires: Duration::ZERO,
                    });
                match event {
                    WatchEvent::Put(id) => entry.endpoints.insert(id),
                    WatchEvent::Delete(id) => entry.endpoints.remove(&id),
                }
            }
            CacheMode::Ttl => {
                let Some(entry) = self.entries.get_mut(service) else {
                    return false; // never looked up
                };
                match event {
                    WatchEvent::Put(id) => {
                        entry.expires = now + ttl;
                        entry.endpoints.insert(id)
                    }
                    WatchEvent::Delete(id) => {
                        if !entry.endpoints.contains(&id) {
                            return false;
                        }
                        if entry.endpoints.len() > 1 {
                            entry.endpoints.remove(&id);
                            entry.expires = now + ttl;
                            true
                        } else if self.in_error {
                            false // `del` keeps the entry in the error state
                        } else {
                            self.entries.remove(service);
                            true
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[InstanceId]) -> BTreeSet<InstanceId> {
        ids.iter().copied().collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ttl_cache(ttl_ms: u64, stale_on_error: bool) -> RegistryCache {
        RegistryCache::new(CacheConfig {
            mode: CacheMode::Ttl,
            ttl_ms,
            stale_on_error,
        })
    }

    #[test]
    fn go_micro_default_ttl_is_a_minute() {
        let c = RegistryCache::new(CacheConfig::go_micro());
        assert_eq!(c.config().ttl_ms, 60_000);
        assert!(c.config().stale_on_error);
    }

    #[test]
    fn ttl_entry_is_fresh_until_it_expires() {
        let mut c = ttl_cache(1000, true);
        assert_eq!(c.get("svc", ms(0)), Lookup::Missing);
        c.full_read("svc", set(&[1, 2]), ms(100));
        assert_eq!(c.expires_at("svc"), Some(ms(1100)));
        assert_eq!(c.get("svc", ms(1099)), Lookup::Fresh(&set(&[1, 2])));
        assert_eq!(
            c.get("svc", ms(1100)),
            Lookup::Stale {
                endpoints: &set(&[1, 2]),
                reason: StaleReason::Expired
            }
        );
        assert_eq!(c.get("other", ms(0)), Lookup::Missing);
    }

    #[test]
    fn an_empty_read_is_not_served() {
        let mut c = ttl_cache(1000, true);
        c.full_read("svc", set(&[]), ms(0));
        assert_eq!(c.get("svc", ms(1)), Lookup::Missing);
    }

    #[test]
    fn registry_error_serves_stale_when_switched_on() {
        let mut c = ttl_cache(1000, true);
        c.full_read("svc", set(&[1]), ms(0));
        c.registry_error();
        assert!(c.in_error());
        // Fresh entries are fresh whatever the status.
        assert_eq!(c.get("svc", ms(999)), Lookup::Fresh(&set(&[1])));
        assert_eq!(
            c.get("svc", ms(120_000)),
            Lookup::Stale {
                endpoints: &set(&[1]),
                reason: StaleReason::RegistryError
            }
        );
        // A successful read ends the error state.
        c.full_read("svc", set(&[2]), ms(120_000));
        assert!(!c.in_error());
        assert_eq!(c.get("svc", ms(120_001)), Lookup::Fresh(&set(&[2])));
    }

    #[test]
    fn registry_error_fails_when_switched_off() {
        let mut c = ttl_cache(1000, false);
        c.full_read("svc", set(&[1]), ms(0));
        c.registry_error();
        assert_eq!(c.get("svc", ms(500)), Lookup::Fresh(&set(&[1])));
        assert_eq!(c.get("svc", ms(1000)), Lookup::Missing);
    }

    #[test]
    fn watch_events_update_a_ttl_entry_and_restart_its_ttl() {
        let mut c = ttl_cache(1000, true);
        // Events for a service never read are dropped.
        assert!(!c.apply("svc", WatchEvent::Put(1), ms(0)));
        assert_eq!(c.get("svc", ms(0)), Lookup::Missing);
        c.full_read("svc", set(&[1, 2]), ms(0));
        assert!(c.apply("svc", WatchEvent::Put(3), ms(500)));
        assert_eq!(c.get("svc", ms(1499)), Lookup::Fresh(&set(&[1, 2, 3])));
        assert!(!c.apply("svc", WatchEvent::Put(3), ms(600))); // an update
        assert_eq!(c.expires_at("svc"), Some(ms(1600)));
        assert!(c.apply("svc", WatchEvent::Delete(1), ms(700)));
        assert!(!c.apply("svc", WatchEvent::Delete(9), ms(700)));
        assert_eq!(c.get("svc", ms(701)), Lookup::Fresh(&set(&[2, 3])));
        assert!(c.apply("svc", WatchEvent::Delete(2), ms(800)));
        assert!(c.apply("svc", WatchEvent::Delete(3), ms(800)));
        assert_eq!(c.get("svc", ms(801)), Lookup::Missing);
    }

    #[test]
    fn last_instance_is_kept_during_a_registry_error() {
        let mut c = ttl_cache(1000, true);
        c.full_read("svc", set(&[1]), ms(0));
        c.registry_error();
        assert!(!c.apply("svc", WatchEvent::Delete(1), ms(10)));
        assert_eq!(c.get("svc", ms(10)), Lookup::Fresh(&set(&[1])));
    }

    #[test]
    fn watch_mode_is_exactly_what_the_watch_delivered() {
        let mut c = RegistryCache::new(CacheConfig::etcd_resolver());
        assert_eq!(c.get("svc", ms(0)), Lookup::Missing);
        assert!(c.apply("svc", WatchEvent::Put(1), ms(0)));
        assert!(c.apply("svc", WatchEvent::Put(2), ms(0)));
        assert!(c.apply("svc", WatchEvent::Delete(1), ms(5)));
        assert!(!c.apply("svc", WatchEvent::Delete(1), ms(5)));
        // No TTL: fresh an hour later, and errors change nothing.
        c.registry_error();
        assert!(!c.in_error());
        assert_eq!(c.get("svc", ms(3_600_000)), Lookup::Fresh(&set(&[2])));
        assert_eq!(c.expires_at("svc"), None);
        assert!(c.apply("svc", WatchEvent::Delete(2), ms(6)));
        assert_eq!(c.get("svc", ms(7)), Lookup::Fresh(&set(&[])));
        // A full read (after a compacted watch) replaces the set.
        c.full_read("svc", set(&[7, 8]), ms(10));
        assert_eq!(c.get("svc", ms(10)), Lookup::Fresh(&set(&[7, 8])));
    }

    #[test]
    #[should_panic(expected = "ttl_ms > 0")]
    fn ttl_mode_needs_a_ttl() {
        ttl_cache(0, true);
    }
}

//! Client profiles: how an instance stays registered and how a caller finds and
//! calls instances, as plain data, with the defaults of etcd's client and of
//! go-micro as found in their sources.
//!
//! **Instances.**
//!
//! - `etcd`: the endpoint key is put under a lease (`client/v3/naming/doc.go`,
//!   `AddEndpoint(..., clientv3.WithLease(lid))`) that the client keeps alive. The
//!   naming package sets no TTL; the usual owner of such a lease is a
//!   `concurrency.Session`, whose TTL defaults to 60 s (`client/v3/concurrency/
//!   session.go`, `defaultSessionTTL = 60`). `KeepAlive` renews every TTL/3
//!   (`client/v3/lease.go`, `recvKeepAlive`: `nextKeepAlive :=
//!   time.Now().Add((time.Duration(karesp.TTL) * time.Second) / 3.0)`), so 20 s.
//!   A graceful stop revokes the lease (`Session.Close` → `Revoke`), deleting the key.
//! - `go-micro`: the server registers with a TTL and registers again on an interval
//!   (`server/rpc_server.go`, `registrar`), `DefaultRegisterTTL = time.Second * 90`
//!   and `DefaultRegisterInterval = time.Second * 30` (`server/server.go`), and
//!   deregisters when it shuts down (`registrar`: "Shutting down, deregister").
//!   (Older releases had 60 s / 30 s; go-micro PR #264.)
//!
//! **Callers.**
//!
//! - `etcd`: gRPC with etcd's naming resolver: the watch's endpoint set (no TTL, see
//!   [`CacheMode::Watch`]), round robin (gRPC's `round_robin`; note gRPC's default
//!   policy is `pick_first` unless a service config asks for `round_robin`). gRPC
//!   sends a call only on a ready connection: a broken one leaves the picker and is
//!   redialled with backoff from 1 s (grpc-go `backoff.DefaultConfig`, `BaseDelay:
//!   1.0 * time.Second`), approximated here by ejecting an instance for 1 s after one
//!   failed call. No deadline by default (gRPC calls have none unless set), no
//!   retries; a dial is given 20 s (grpc-go `clientconn.go`, `minConnectTimeout = 20
//!   * time.Second`).
//! - `go-micro`: the registry cache ([`CacheConfig::go_micro`], TTL 60 s, stale on
//!   error) and the random selector, no ejection (`Mark` does nothing). Per call
//!   (`client/client.go`): `DefaultRetries = 5` (tried up to 6 times: `for i := 0; i
//!   <= retries; i++` in `client/rpc_client.go`), `DefaultRequestTimeout =
//!   time.Second * 30`, `DefaultConnectionTimeout = time.Second * 5`, and
//!   `DefaultRetry = RetryOnError`, which retries a timeout (code 408) only
//!   (`client/retry.go`).
//!
//! Sources read: go-micro/go-micro at 0433e98 (v5), etcd-io/etcd at c34dc7e; grpc-go's
//! constants through copies of its files.

use std::fmt;

use serde::Deserialize;

use super::cache::{CacheConfig, CacheMode};
use super::selector::{SelectorConfig, Strategy};

/// The profile names [`DiscoveryProfile::from_name`] knows.
pub const PROFILE_NAMES: [&str; 2] = ["etcd", "go-micro"];

/// A profile name that is not one of [`PROFILE_NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown discovery profile {:?}: expected one of {}",
            self.0,
            PROFILE_NAMES.map(|n| format!("{n:?}")).join(", ")
        )
    }
}

impl std::error::Error for UnknownProfile {}

/// How an instance keeps its registration alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    /// One lease, renewed by keepalives every `refresh_ms`; the registry deletes the
    /// key when the lease expires (etcd).
    Lease,
    /// The whole registration written again, with its TTL, every `refresh_ms`
    /// (go-micro's `RegisterInterval`).
    Reregister,
}

/// An instance's registration settings: in TOML, `registration = "lease" |
/// "reregister"`, `ttl-ms`, `refresh-ms`, `deregister-on-stop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstanceProfile {
    /// Lease keepalives or re-registration.
    pub registration: Registration,
    /// The registration's TTL in ms: the lease TTL, or go-micro's `RegisterTTL`.
    pub ttl_ms: u64,
    /// How often it is refreshed, in ms: the keepalive cadence, or go-micro's
    /// `RegisterInterval`. Below `ttl_ms`.
    pub refresh_ms: u64,
    /// A graceful stop deregisters (revokes the lease) before the process ends; a
    /// crash never does.
    pub deregister_on_stop: bool,
}

impl InstanceProfile {
    /// etcd: a 60 s session lease kept alive every 20 s, revoked on a graceful stop.
    pub fn etcd() -> Self {
        let ttl_ms = 60_000;
        InstanceProfile {
            registration: Registration::Lease,
            ttl_ms,
            refresh_ms: keepalive_ms(ttl_ms),
            deregister_on_stop: true,
        }
    }

    /// go-micro: registered with a 90 s TTL, again every 30 s, deregistered on stop.
    pub fn go_micro() -> Self {
        InstanceProfile {
            registration: Registration::Reregister,
            ttl_ms: 90_000,
            refresh_ms: 30_000,
            deregister_on_stop: true,
        }
    }

    /// The profile named `name` (`"etcd"` or `"go-micro"`).
    pub fn from_name(name: &str) -> Result<Self, UnknownProfile> {
        DiscoveryProfile::from_name(name).map(|p| p.instance)
    }

    /// Checks the settings: a TTL, and a refresh within it.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_ms == 0 {
            return Err("instance ttl-ms must be > 0".into());
        }
        if self.refresh_ms == 0 || self.refresh_ms >= self.ttl_ms {
            return Err(format!(
                "instance refresh-ms must be in 1..{} (below ttl-ms), not {}",
                self.ttl_ms, self.refresh_ms
            ));
        }
        Ok(())
    }
}

/// The keepalive cadence clientv3 uses for a lease of `ttl_ms`: a third of it
/// (`client/v3/lease.go`, `nextKeepAlive`).
pub fn keepalive_ms(ttl_ms: u64) -> u64 {
    ttl_ms / 3
}

/// Which failed calls a caller tries again (on another pick).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// None.
    Never,
    /// Timeouts only (go-micro's `RetryOnError`: code 408).
    Timeout,
    /// Every failure: errors, refusals and timeouts (go-micro's `RetryAlways`).
    AnyError,
}

/// A caller's settings: in TOML, the tables `cache` and `selector` and the keys
/// `retries`, `retry-on`, `request-timeout-ms`, `connect-timeout-ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CallerProfile {
    /// How it keeps the registry's answer.
    pub cache: CacheConfig,
    /// How it picks an instance per call.
    pub selector: SelectorConfig,
    /// Tries after the first, each on a new pick (a call is tried up to `retries + 1`
    /// times).
    pub retries: u32,
    /// Which failures are tried again.
    pub retry_on: RetryOn,
    /// The deadline of one call, retries included, in ms (`None`: none).
    pub request_timeout_ms: Option<u64>,
    /// How long a dial may take, in ms (`None`: no limit).
    pub connect_timeout_ms: Option<u64>,
}

impl CallerProfile {
    /// etcd's naming resolver feeding gRPC's round robin.
    pub fn etcd() -> Self {
        CallerProfile {
            cache: CacheConfig::etcd_resolver(),
            selector: SelectorConfig {
                strategy: Strategy::RoundRobin,
                eject_after_failures: 1,
                eject_ms: 1000,
            },
            retries: 0,
            retry_on: RetryOn::Never,
            request_timeout_ms: None,
            connect_timeout_ms: Some(20_000),
        }
    }

    /// go-micro's client: cache TTL 60 s, random selector, 5 retries on timeout, a
    /// 30 s request timeout, a 5 s connection timeout.
    pub fn go_micro() -> Self {
        CallerProfile {
            cache: CacheConfig::go_micro(),
            selector: SelectorConfig {
                strategy: Strategy::Random,
                eject_after_failures: 0,
                eject_ms: 0,
            },
            retries: 5,
            retry_on: RetryOn::Timeout,
            request_timeout_ms: Some(30_000),
            connect_timeout_ms: Some(5_000),
        }
    }

    /// The profile named `name` (`"etcd"` or `"go-micro"`).
    pub fn from_name(name: &str) -> Result<Self, UnknownProfile> {
        DiscoveryProfile::from_name(name).map(|p| p.caller)
    }

    /// Checks the settings the way [`RegistryCache::new`](super::RegistryCache::new)
    /// and [`Selector::new`](super::Selector::new) assert them, plus nonzero timeouts.
    pub fn validate(&self) -> Result<(), String> {
        if self.cache.mode == CacheMode::Ttl && self.cache.ttl_ms == 0 {
            return Err("caller cache.ttl-ms must be > 0 with mode = \"ttl\"".into());
        }
        let s = &self.selector;
        if (s.eject_after_failures > 0) != (s.eject_ms > 0) {
            return Err(
                "caller selector.eject-after-failures and eject-ms must both be 0 or both > 0"
                    .into(),
            );
        }
        if self.request_timeout_ms == Some(0) || self.connect_timeout_ms == Some(0) {
            return Err("caller timeouts must be > 0 (leave them out for none)".into());
        }
        Ok(())
    }
}

/// An instance profile and a caller profile: in a scenario's TOML, the tables
/// `instance` and `caller`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiscoveryProfile {
    /// How instances stay registered.
    pub instance: InstanceProfile,
    /// How callers find and call them.
    pub caller: CallerProfile,
}

impl DiscoveryProfile {
    /// The profile named `name`: `"etcd"` or `"go-micro"`.
    ///
    /// Errors: [`UnknownProfile`] for any other name.
    pub fn from_name(name: &str) -> Result<Self, UnknownProfile> {
        match name {
            "etcd" => Ok(DiscoveryProfile {
                instance: InstanceProfile::etcd(),
                caller: CallerProfile::etcd(),
            }),
            "go-micro" => Ok(DiscoveryProfile {
                instance: InstanceProfile::go_micro(),
                caller: CallerProfile::go_micro(),
            }),
            other => Err(UnknownProfile(other.to_owned())),
        }
    }

    /// Checks both halves.
    pub fn validate(&self) -> Result<(), String> {
        self.instance.validate()?;
        self.caller.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_profiles_have_the_source_defaults() {
        let etcd = DiscoveryProfile::from_name("etcd").unwrap();
        assert_eq!(etcd.instance.registration, Registration::Lease);
        assert_eq!(etcd.instance.ttl_ms, 60_000);
        assert_eq!(etcd.instance.refresh_ms, 20_000);
        assert_eq!(etcd.caller.cache.mode, CacheMode::Watch);
        assert_eq!(etcd.caller.selector.strategy, Strategy::RoundRobin);
        assert_eq!(etcd.caller.retries, 0);
        assert_eq!(etcd.caller.request_timeout_ms, None);

        let micro = DiscoveryProfile::from_name("go-micro").unwrap();
        assert_eq!(micro.instance.registration, Registration::Reregister);
        assert_eq!(micro.instance.ttl_ms, 90_000);
        assert_eq!(micro.instance.refresh_ms, 30_000);
        assert_eq!(micro.caller.cache.mode, CacheMode::Ttl);
        assert_eq!(micro.caller.cache.ttl_ms, 60_000);
        assert!(micro.caller.cache.stale_on_error);
        assert_eq!(micro.caller.selector, SelectorConfig::default());
        assert_eq!(micro.caller.retries, 5);
        assert_eq!(micro.caller.retry_on, RetryOn::Timeout);
        assert_eq!(micro.caller.request_timeout_ms, Some(30_000));
        assert_eq!(micro.caller.connect_timeout_ms, Some(5_000));

        for name in PROFILE_NAMES {
            DiscoveryProfile::from_name(name)
                .unwrap()
                .validate()
                .unwrap();
            assert_eq!(
                InstanceProfile::from_name(name).unwrap(),
                DiscoveryProfile::from_name(name).unwrap().instance
            );
            assert_eq!(
                CallerProfile::from_name(name).unwrap(),
                DiscoveryProfile::from_name(name).unwrap().caller
            );
        }
    }

    #[test]
    fn keepalive_is_a_third_of_the_ttl() {
        assert_eq!(keepalive_ms(60_000), 20_000);
        assert_eq!(keepalive_ms(10_000), 3_333);
    }

    #[test]
    fn unknown_names_are_refused_clearly() {
        let err = DiscoveryProfile::from_name("consul").unwrap_err();
        assert_eq!(err, UnknownProfile("consul".into()));
        assert_eq!(
            err.to_string(),
            "unknown discovery profile \"consul\": expected one of \"etcd\", \"go-micro\""
        );
        assert!(CallerProfile::from_name("go_micro").is_err());
        assert!(InstanceProfile::from_name("").is_err());
    }

    #[test]
    fn parses_from_toml() {
        let p: DiscoveryProfile = toml::from_str(
            r#"
            [instance]
            registration = "reregister"
            ttl-ms = 1000
            refresh-ms = 500
            deregister-on-stop = false
            [caller]
            retries = 2
            retry-on = "any-error"
            request-timeout-ms = 1000
            [caller.cache]
            mode = "ttl"
            ttl-ms = 5000
            stale-on-error = true
            [caller.selector]
            strategy = "round-robin"
            eject-after-failures = 3
            eject-ms = 2000
            "#,
        )
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.instance.refresh_ms, 500);
        assert!(!p.instance.deregister_on_stop);
        assert_eq!(p.caller.retry_on, RetryOn::AnyError);
        assert_eq!(p.caller.connect_timeout_ms, None);
        assert_eq!(p.caller.cache.ttl_ms, 5000);
        assert_eq!(p.caller.selector.strategy, Strategy::RoundRobin);
        assert_eq!(p.caller.selector.eject_ms, 2000);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = toml::from_str::<InstanceProfile>(
            r#"
            registration = "lease"
            ttl-ms = 1000
            refresh-ms = 300
            deregister-on-stop = true
            keepalive-ms = 300
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("keepalive-ms"), "{err}");
        let err = toml::from_str::<SelectorConfig>(r#"strategy = "least-loaded""#).unwrap_err();
        assert!(err.to_string().contains("least-loaded"), "{err}");
    }

    #[test]
    fn validate_catches_bad_settings() {
        let mut i = InstanceProfile::etcd();
        i.refresh_ms = i.ttl_ms;
        assert!(i.validate().is_err());
        let mut c = CallerProfile::go_micro();
        c.selector.eject_after_failures = 2;
        assert!(c.validate().is_err());
        let mut c = CallerProfile::go_micro();
        c.cache.ttl_ms = 0;
        assert!(c.validate().is_err());
        let mut c = CallerProfile::etcd();
        c.request_timeout_ms = Some(0);
        assert!(c.validate().is_err());
    }
}

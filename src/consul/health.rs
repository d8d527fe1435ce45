//! One health check as a Consul agent runs it, sans-IO, after `agent/checks/check.go`
//! (`CheckTTL`, `CheckHTTP`, `CheckTCP`, `StatusHandler`), `agent/local/state.go`
//! (`UpdateCheck`, `CriticalTime`) and `agent/agent.go` (`reapServicesInternal`).
//!
//! - **Statuses** `passing`, `warning`, `critical`. A new check starts `critical`
//!   unless it was registered with a status ([`CheckConfig::initial_status`]).
//! - **TTL** ([`CheckKind::Ttl`]): the service reports its status with
//!   [`HealthCheck::ttl_update`], which applies at once (no hysteresis: `CheckTTL`
//!   calls the notifier directly) and restarts the countdown. The countdown starts at
//!   registration; when it runs out the check turns critical with the output
//!   `TTL expired` (followed by the last output, if any) and stays so, with no further
//!   deadline, until the next update (`CheckTTL.run`, `getExpiredOutput`).
//! - **Interval probes** ([`CheckKind::Probe`], HTTP/TCP-like): the first probe is due
//!   a random stagger in `[0, interval)` after registration (`lib.RandomStagger`), each
//!   next one `interval` after the previous one completed (`time.After(Interval)` after
//!   `check()` returns). The caller starts a probe when [`HealthCheck::on_deadline`]
//!   says so and feeds its result with [`HealthCheck::probe_result`]; one still
//!   running `timeout` after it started fails as critical (the HTTP client's or
//!   dialer's timeout). HTTP 2xx is passing, 429 warning, anything else critical
//!   ([`ProbeOutcome::from_http_status`]).
//! - **Hysteresis** (`StatusHandler.updateCheck`), for probes only: a passing or
//!   warning result resets the failure counter and increments the success counter,
//!   and is applied once `successes >= success_before_passing`; a critical result
//!   resets the success counter, increments the failure counter, and applies critical
//!   once `failures >= failures_before_critical`, else warning once
//!   `failures >= failures_before_warning` (which defaults to the critical threshold),
//!   else nothing. Both counters start at their thresholds, so the first result after
//!   registration applies at once.
//! - **`serfHealth`** ([`CheckKind::SerfHealth`]): the node-level check the leader
//!   writes from gossip: alive is passing (`Agent alive and reachable`), failed is
//!   critical (`Agent not live or unreachable`); see [`HealthCheck::serf_member`].
//! - **Outputs.** Every call that changes the check's status or output returns a
//!   [`CheckUpdate`]; an update identical to the current status and output returns
//!   none (`State.UpdateCheck` ignores idempotent updates).
//! - **Critical time and the reaper.** The check records when it last turned critical
//!   (`CriticalTime`); [`Reaper`] runs every [`CHECK_REAP_INTERVAL`] (30 s, Consul's
//!   `CheckReapInterval`) and deregisters a service as soon as one of its checks with
//!   `deregister_critical_service_after` has been critical for strictly longer than
//!   it. That timeout is raised to [`DEREGISTER_CRITICAL_MIN`] (1 minute,
//!   `CheckDeregisterIntervalMin`). So a service is removed between `after` and
//!   `after + 30 s` after its check turned critical.
//!
//! Time is a monotonic [`Duration`] passed in by the caller; randomness is the
//! caller's RNG. Nothing here reads a clock.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;

/// How often the agent's reaper looks for services to deregister (Consul's
/// `CheckReapInterval`, not user-configurable: `agent/config/default.go`).
pub const CHECK_REAP_INTERVAL: Duration = Duration::from_secs(30);

/// The smallest `deregister_critical_service_after` the agent honours; a smaller one
/// is raised to it, with a warning (Consul's `CheckDeregisterIntervalMin`).
pub const DEREGISTER_CRITICAL_MIN: Duration = Duration::from_secs(60);

/// The output of a TTL check whose TTL ran out (before any last output).
pub const TTL_EXPIRED_OUTPUT: &str = "TTL expired";

/// The output of `serfHealth` for a live member (`structs.SerfCheckAliveOutput`).
pub const SERF_ALIVE_OUTPUT: &str = "Agent alive and reachable";

/// The output of `serfHealth` for a failed member (`structs.SerfCheckFailedOutput`).
pub const SERF_FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// The id of the node-level check gossip drives (`structs.SerfCheckID`).
pub const SERF_CHECK_ID: &str = "serfHealth";

/// A check's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Healthy.
    Passing,
    /// Degraded: still served by DNS, but excluded by `?passing`.
    Warning,
    /// Unhealthy.
    Critical,
}

impl Status {
    /// The name Consul's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

crate::impl_fingerprint!(enum Status { 0 => Passing, 1 => Warning, 2 => Critical });

/// What kind of check, with its timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// The service must report within `ttl_ms` of its last report (or of
    /// registration).
    Ttl {
        /// Time to live, in milliseconds (> 0).
        ttl_ms: u64,
    },
    /// The agent probes every `interval_ms`, each probe failing after `timeout_ms`.
    Probe {
        /// Time between the end of one probe and the start of the next, in
        /// milliseconds (> 0).
        interval_ms: u64,
        /// How long a probe may run before it counts as critical, in milliseconds
        /// (> 0; Consul's default is 10 s for HTTP and TCP).
        timeout_ms: u64,
    },
    /// The node-level check set from gossip membership.
    SerfHealth,
}

/// Consecutive results needed before a probe's status changes (all 0 by default:
/// every result applies at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive passing/warning results before one applies.
    pub success_before_passing: u32,
    /// Consecutive critical results before the check turns warning; `None`: the same
    /// as `failures_before_critical`.
    pub failures_before_warning: Option<u32>,
    /// Consecutive critical results before the check turns critical.
    pub failures_before_critical: u32,
}

/// How a check is registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Kind and timing.
    pub kind: CheckKind,
    /// The status it starts with (`None`: critical).
    pub initial_status: Option<Status>,
    /// Thresholds (probes only; TTL and `serfHealth` updates apply at once).
    pub hysteresis: Hysteresis,
    /// Deregister the check's service once the check has been critical this long, in
    /// milliseconds (`None`: never). Raised to [`DEREGISTER_CRITICAL_MIN`].
    pub deregister_critical_service_after_ms: Option<u64>,
}

impl CheckConfig {
    /// A TTL check of `ttl_ms`, starting critical, no hysteresis, never reaped.
    pub fn ttl(ttl_ms: u64) -> CheckConfig {
        CheckConfig {
            kind: CheckKind::Ttl { ttl_ms },
            initial_status: None,
            hysteresis: Hysteresis::default(),
            deregister_critical_service_after_ms: None,
        }
    }

    /// A probe every `interval_ms` timing out after `timeout_ms`, starting critical,
    /// no hysteresis, never reaped.
    pub fn probe(interval_ms: u64, timeout_ms: u64) -> CheckConfig {
        CheckConfig {
            kind: CheckKind::Probe {
                interval_ms,
                timeout_ms,
            },
            initial_status: None,
            hysteresis: Hysteresis::default(),
            deregister_critical_service_after_ms: None,
        }
    }

    /// The `serfHealth` check, starting critical.
    pub fn serf_health() -> CheckConfig {
        CheckConfig {
            kind: CheckKind::SerfHealth,
            initial_status: None,
            hysteresis: Hysteresis::default(),
            deregister_critical_service_after_ms: None,
        }
    }

    /// The reap timeout the agent applies: the configured one raised to
    /// [`DEREGISTER_CRITICAL_MIN`] (`None`: never reaped; Consul treats 0 as unset).
    pub fn reap_after(&self) -> Option<Duration> {
        match self.deregister_critical_service_after_ms {
            None | Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms).max(DEREGISTER_CRITICAL_MIN)),
        }
    }
}

/// One probe's result as the probed thing answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// HTTP 2xx, TCP connected.
    Passing,
    /// HTTP 429 (Too Many Requests).
    Warning,
    /// Any other HTTP status, a connection error.
    Critical,
}

impl ProbeOutcome {
    /// An HTTP check's result for status `code` (`CheckHTTP.check`): 2xx passing,
    /// 429 warning, anything else critical.
    pub fn from_http_status(code: u16) -> ProbeOutcome {
        match code {
            200..=299 => ProbeOutcome::Passing,
            429 => ProbeOutcome::Warning,
            _ => ProbeOutcome::Critical,
        }
    }

    fn status(self) -> Status {
        match self {
            ProbeOutcome::Passing => Status::Passing,
            ProbeOutcome::Warning => Status::Warning,
            ProbeOutcome::Critical => Status::Critical,
        }
    }
}

/// A running probe, as a typed token: a result for a probe that is no longer
/// running (it timed out) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeId(pub u64);

/// Gossip's verdict on a node, for `serfHealth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberHealth {
    /// Alive (joined, or refuted a suspicion).
    Alive,
    /// Failed (declared dead).
    Failed,
}

/// A change of the check's status or output, for the agent's local state (and, from
/// there, anti-entropy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckUpdate {
    /// The status before.
    pub previous: Status,
    /// The status now.
    pub status: Status,
    /// The output now.
    pub output: String,
}

impl CheckUpdate {
    /// Whether the status changed (an output-only change may be synced lazily: see
    /// [`super::anti_entropy`]).
    pub fn status_changed(&self) -> bool {
        self.previous != self.status
    }
}

/// What a deadline brought.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadlineOutcome {
    /// A probe the caller must start now; its result goes to
    /// [`HealthCheck::probe_result`].
    pub start_probe: Option<ProbeId>,
    /// A change (a TTL expiry, a probe timeout).
    pub update: Option<CheckUpdate>,
}

/// Why a call was refused (the check is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The call does not apply to this kind of check.
    WrongKind,
    /// The probe is not the one running (it timed out, or never existed).
    StaleProbe(ProbeId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeState {
    /// Waiting to start the next probe at the given time.
    Idle { next_at: Duration },
    /// A probe runs since `started_at`.
    Running { id: ProbeId, started_at: Duration },
}

/// One check's state machine. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    config: CheckConfig,
    status: Status,
    output: String,
    /// When the status last turned critical; `None` while not critical.
    critical_since: Option<Duration>,
    /// `StatusHandler`'s counters (probes only).
    successes: u32,
    failures: u32,
    /// TTL: when it runs out; `None` once it has (until the next update).
    ttl_deadline: Option<Duration>,
    /// TTL: the last reported output, appended to `TTL expired`.
    ttl_last_output: String,
    /// Probes only.
    probe: Option<ProbeState>,
    next_probe_id: u64,
}

impl HealthCheck {
    /// A check registered at `now`. A probe's first run is staggered by a random
    /// delay in `[0, interval)` drawn from `rng` (Consul's `lib.RandomStagger`).
    ///
    /// Panics on a zero TTL, interval or timeout (a programmer error).
    pub fn new(config: CheckConfig, now: Duration, rng: &mut impl Rng) -> HealthCheck {
        let status = config.initial_status.unwrap_or(Status::Critical);
        let h = config.hysteresis;
        let mut check = HealthCheck {
            status,
            output: String::new(),
            critical_since: (status == Status::Critical).then_some(now),
            successes: h.success_before_passing,
            failures: h.failures_before_critical,
            ttl_deadline: None,
            ttl_last_output: String::new(),
            probe: None,
            next_probe_id: 0,
            config,
        };
        match check.config.kind {
            CheckKind::Ttl { ttl_ms } => {
                assert!(ttl_ms > 0, "a TTL check needs a TTL");
                check.ttl_deadline = Some(now + Duration::from_millis(ttl_ms));
            }
            CheckKind::Probe {
                interval_ms,
                timeout_ms,
            } => {
                assert!(
                    interval_ms > 0 && timeout_ms > 0,
                    "a probe needs an interval and a timeout"
                );
                let stagger_ms = rng.gen_range(0..interval_ms);
                check.probe = Some(ProbeState::Idle {
                    next_at: now + Duration::from_millis(stagger_ms),
                });
            }
            CheckKind::SerfHealth => {}
        }
        check
    }

    /// How it was registered.
    pub fn config(&self) -> &CheckConfig {
        &self.config
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The current output.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// How long the check has been critical at `now` (`None`: it is not critical).
    pub fn critical_for(&self, now: Duration) -> Option<Duration> {
        self.critical_since.map(|since| now.saturating_sub(since))
    }

    /// Whether the agent's reaper removes the check's service at `now`: the check has
    /// a reap timeout and has been critical for strictly longer than it.
    pub fn reapable(&self, now: Duration) -> bool {
        match (self.config.reap_after(), self.critical_for(now)) {
            (Some(after), Some(critical_for)) => critical_for > after,
            _ => false,
        }
    }

    /// When [`HealthCheck::on_deadline`] must next be called: a TTL's expiry, a
    /// probe's start or its timeout. `None`: nothing is scheduled (an expired TTL,
    /// `serfHealth`).
    pub fn next_deadline(&self) -> Option<Duration> {
        match self.config.kind {
            CheckKind::Ttl { .. } => self.ttl_deadline,
            CheckKind::Probe { timeout_ms, .. } => match self.probe {
                Some(ProbeState::Idle { next_at }) => Some(next_at),
                Some(ProbeState::Running { started_at, .. }) => {
                    Some(started_at + Duration::from_millis(timeout_ms))
                }
                None => unreachable!("a probe check has a probe state"),
            },
            CheckKind::SerfHealth => None,
        }
    }

    /// Acts on whatever deadline is due at `now` (nothing if none is).
    pub fn on_deadline(&mut self, now: Duration) -> DeadlineOutcome {
        let mut outcome = DeadlineOutcome::default();
        let Some(deadline) = self.next_deadline() else {
            return outcome;
        };
        if now < deadline {
            return outcome;
        }
        match self.config.kind {
            CheckKind::Ttl { .. } => {
                self.ttl_deadline = None;
                let output = if self.ttl_last_output.is_empty() {
                    TTL_EXPIRED_OUTPUT.to_string()
                } else {
                    format!(
                        "{TTL_EXPIRED_OUTPUT} (last output before timeout follows): {}",
                        self.ttl_last_output
                    )
                };
                outcome.update = self.notify(Status::Critical, output, now);
            }
            CheckKind::Probe { timeout_ms, .. } => match self.probe {
                Some(ProbeState::Idle { .. }) => {
                    let id = ProbeId(self.next_probe_id);
                    self.next_probe_id += 1;
                    self.probe = Some(ProbeState::Running {
                        id,
                        started_at: now,
                    });
                    outcome.start_probe = Some(id);
                }
                Some(ProbeState::Running { .. }) => {
                    let output = format!("Timed out ({timeout_ms}ms) running check");
                    outcome.update = self.finish_probe(ProbeOutcome::Critical, output, now);
                }
                None => unreachable!("a probe check has a probe state"),
            },
            CheckKind::SerfHealth => unreachable!("serfHealth has no deadline"),
        }
        outcome
    }

    /// The result of probe `id`, completed at `now`, with its `output`. The next probe
    /// is due `interval` from now.
    pub fn probe_result(
        &mut self,
        id: ProbeId,
        outcome: ProbeOutcome,
        output: &str,
        now: Duration,
    ) -> Result<Option<CheckUpdate>, CheckError> {
        match self.probe {
            None => Err(CheckError::WrongKind),
            Some(ProbeState::Running { id: running, .. }) if running == id => {
                Ok(self.finish_probe(outcome, output.to_string(), now))
            }
            Some(_) => Err(CheckError::StaleProbe(id)),
        }
    }

    /// A TTL check's report at `now` (`/agent/check/pass|warn|fail|update`): applies
    /// `status` and `output` at once and restarts the TTL.
    pub fn ttl_update(
        &mut self,
        status: Status,
        output: &str,
        now: Duration,
    ) -> Result<Option<CheckUpdate>, CheckError> {
        let CheckKind::Ttl { ttl_ms } = self.config.kind else {
            return Err(CheckError::WrongKind);
        };
        self.ttl_last_output = output.to_string();
        self.ttl_deadline = Some(now + Duration::from_millis(ttl_ms));
        Ok(self.notify(status, output.to_string(), now))
    }

    /// A TTL check's state as a restarted agent loads it from disk
    /// (`agent/agent.go`: `loadCheckState`): `status` and `output` as last saved, the
    /// countdown running out at `ttl_deadline`. Consul restarts the whole TTL there
    /// (consul#3569); the saved expiry is what the state was valid until.
    pub fn restore(
        &mut self,
        status: Status,
        output: &str,
        ttl_deadline: Duration,
        now: Duration,
    ) -> Result<Option<CheckUpdate>, CheckError> {
        let CheckKind::Ttl { .. } = self.config.kind else {
            return Err(CheckError::WrongKind);
        };
        assert!(ttl_deadline > now, "an expired state is not restored");
        self.ttl_last_output = output.to_string();
        self.ttl_deadline = Some(ttl_deadline);
        Ok(self.notify(status, output.to_string(), now))
    }

    /// `serfHealth`'s update from gossip at `now`.
    pub fn serf_member(
        &mut self,
        health: MemberHealth,
        now: Duration,
    ) -> Result<Option<CheckUpdate>, CheckError> {
        if self.config.kind != CheckKind::SerfHealth {
            return Err(CheckError::WrongKind);
        }
        let (status, output) = match health {
            MemberHealth::Alive => (Status::Passing, SERF_ALIVE_OUTPUT),
            MemberHealth::Failed => (Status::Critical, SERF_FAILED_OUTPUT),
        };
        Ok(self.notify(status, output.to_string(), now))
    }

    /// Ends the running probe and schedules the next one.
    fn finish_probe(
        &mut self,
        outcome: ProbeOutcome,
        output: String,
        now: Duration,
    ) -> Option<CheckUpdate> {
        let CheckKind::Probe { interval_ms, .. } = self.config.kind else {
            unreachable!("only probes finish probes");
        };
        self.probe = Some(ProbeState::Idle {
            next_at: now + Duration::from_millis(interval_ms),
        });
        self.status_handler(outcome, output, now)
    }

    /// `StatusHandler.updateCheck`: the thresholds between a probe's result and the
    /// status it sets.
    fn status_handler(
        &mut self,
        outcome: ProbeOutcome,
        output: String,
        now: Duration,
    ) -> Option<CheckUpdate> {
        let h = self.config.hysteresis;
        match outcome {
            ProbeOutcome::Passing | ProbeOutcome::Warning => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                if self.successes >= h.success_before_passing {
                    return self.notify(outcome.status(), output, now);
                }
                None
            }
            ProbeOutcome::Critical => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                let before_warning = h
                    .failures_before_warning
                    .unwrap_or(h.failures_before_critical);
                if self.failures >= h.failures_before_critical {
                    self.notify(Status::Critical, output, now)
                } else if self.failures >= before_warning {
                    self.notify(Status::Warning, output, now)
                } else {
                    None
                }
            }
        }
    }

    /// `State.UpdateCheck`: tracks the critical time, and reports a change unless the
    /// update is idempotent.
    fn notify(&mut self, status: Status, output: String, now: Duration) -> Option<CheckUpdate> {
        if status == Status::Critical {
            self.critical_since.get_or_insert(now);
        } else {
            self.critical_since = None;
        }
        if status == self.status && output == self.output {
            return None;
        }
        let previous = self.status;
        self.status = status;
        self.output.clone_from(&output);
        Some(CheckUpdate {
            previous,
            status,
            output,
        })
    }
}

/// The agent's reaper: a pass every [`CHECK_REAP_INTERVAL`], each scheduled when the
/// previous one ends (Consul's `reapServices` loop on `time.After`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaper {
    next_at: Duration,
}

impl Reaper {
    /// A reaper on an agent started at `now`: its first pass is one interval later.
    pub fn new(now: Duration) -> Reaper {
        Reaper {
            next_at: now + CHECK_REAP_INTERVAL,
        }
    }

    /// When the next pass is due.
    pub fn next_deadline(&self) -> Duration {
        self.next_at
    }

    /// Runs the pass due at `now` (nothing if none is) over the agent's checks, each
    /// with the service it belongs to (`None`: a node-level check, never reaped), and
    /// returns the services to deregister, each once, in order.
    pub fn on_deadline<'a>(
        &mut self,
        now: Duration,
        checks: impl IntoIterator<Item = (Option<&'a str>, &'a HealthCheck)>,
    ) -> Vec<String> {
        if now < self.next_at {
            return Vec::new();
        }
        self.next_at = now + CHECK_REAP_INTERVAL;
        let reaped: BTreeSet<&str> = checks
            .into_iter()
            .filter_map(|(service, check)| service.filter(|_| check.reapable(now)))
            .collect();
        reaped.into_iter().map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    fn probe_with(h: Hysteresis) -> HealthCheck {
        let mut config = CheckConfig::probe(1_000, 500);
        config.hysteresis = h;
        HealthCheck::new(config, ms(0), &mut rng())
    }

    /// Starts the next probe (at its due time) and feeds `outcome` right away.
    fn run_probe(check: &mut HealthCheck, outcome: ProbeOutcome) -> Option<CheckUpdate> {
        let due = check.next_deadline().unwrap();
        let id = check.on_deadline(due).start_probe.expect("a probe is due");
        check.probe_result(id, outcome, "out", due).unwrap()
    }

    #[test]
    fn new_check_starts_critical_unless_registered_with_a_status() {
        let check = HealthCheck::new(CheckConfig::probe(1_000, 500), ms(5), &mut rng());
        assert_eq!(check.status(), Status::Critical);
        assert_eq!(check.critical_for(ms(25)), Some(ms(20)));
        let mut config = CheckConfig::ttl(1_000);
        config.initial_status = Some(Status::Passing);
        let check = HealthCheck::new(config, ms(5), &mut rng());
        assert_eq!(check.status(), Status::Passing);
        assert_eq!(check.critical_for(ms(25)), None);
    }

    #[test]
    fn ttl_expires_to_critical_after_the_ttl_without_an_update() {
        let mut config = CheckConfig::ttl(1_000);
        config.initial_status = Some(Status::Passing);
        let mut check = HealthCheck::new(config, ms(0), &mut rng());
        assert_eq!(check.next_deadline(), Some(ms(1_000)));
        // An update at 800 ms restarts the TTL: nothing happens at 1 s.
        let update = check.ttl_update(Status::Passing, "ok", ms(800)).unwrap();
        assert_eq!(update.unwrap().output, "ok");
        assert_eq!(check.next_deadline(), Some(ms(1_800)));
        assert_eq!(check.on_deadline(ms(1_000)), DeadlineOutcome::default());
        assert_eq!(check.status(), Status::Passing);
        // At 1.8 s it expires, keeping the last output.
        let update = check.on_deadline(ms(1_800)).update.unwrap();
        assert_eq!(
            (update.previous, update.status),
            (Status::Passing, Status::Critical)
        );
        assert_eq!(
            update.output,
            "TTL expired (last output before timeout follows): ok"
        );
        assert_eq!(
            check.next_deadline(),
            None,
            "an expired TTL waits for an update"
        );
        // The next update applies at once and restarts the TTL.
        let update = check
            .ttl_update(Status::Warning, "slow", ms(5_000))
            .unwrap()
            .unwrap();
        assert_eq!(update.status, Status::Warning);
        assert_eq!(check.next_deadline(), Some(ms(6_000)));
    }

    #[test]
    fn ttl_expiry_without_any_output_says_ttl_expired() {
        let mut config = CheckConfig::ttl(1_000);
        config.initial_status = Some(Status::Passing);
        let mut check = HealthCheck::new(config, ms(0), &mut rng());
        let update = check.on_deadline(ms(1_000)).update.unwrap();
        assert_eq!(update.output, TTL_EXPIRED_OUTPUT);
        assert_eq!(check.critical_for(ms(1_500)), Some(ms(500)));
    }

    #[test]
    fn ttl_updates_bypass_hysteresis() {
        let mut config = CheckConfig::ttl(1_000);
        config.hysteresis.failures_before_critical = 3;
        config.initial_status = Some(Status::Passing);
        let mut check = HealthCheck::new(config, ms(0), &mut rng());
        let update = check
            .ttl_update(Status::Critical, "down", ms(10))
            .unwrap()
            .unwrap();
        assert_eq!(update.status, Status::Critical);
    }

    #[test]
    fn first_probe_is_staggered_within_one_interval_then_runs_an_interval_after_each_end() {
        for seed in 0..20 {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let mut check = HealthCheck::new(CheckConfig::probe(1_000, 500), ms(100), &mut r);
            let first = check.next_deadline().unwrap();
            assert!(first >= ms(100) && first < ms(1_100), "{first:?}");
            let id = check.on_deadline(first).start_probe.unwrap();
            assert_eq!(check.next_deadline(), Some(first + ms(500)), "the timeout");
            check
                .probe_result(id, ProbeOutcome::Passing, "ok", first + ms(200))
                .unwrap();
            assert_eq!(check.next_deadline(), Some(first + ms(1_200)));
        }
    }

    #[test]
    fn http_2xx_is_passing_429_warning_and_others_critical() {
        assert_eq!(ProbeOutcome::from_http_status(200), ProbeOutcome::Passing);
        assert_eq!(ProbeOutcome::from_http_status(204), ProbeOutcome::Passing);
        assert_eq!(ProbeOutcome::from_http_status(429), ProbeOutcome::Warning);
        assert_eq!(ProbeOutcome::from_http_status(301), ProbeOutcome::Critical);
        assert_eq!(ProbeOutcome::from_http_status(503), ProbeOutcome::Critical);
        let mut check = probe_with(Hysteresis::default());
        let update = run_probe(&mut check, ProbeOutcome::from_http_status(429)).unwrap();
        assert_eq!(update.status, Status::Warning);
    }

    #[test]
    fn probe_timeout_is_a_critical_result_and_a_late_result_is_refused() {
        let mut config = CheckConfig::probe(1_000, 500);
        config.initial_status = Some(Status::Passing);
        let mut check = HealthCheck::new(config, ms(0), &mut rng());
        let due = check.next_deadline().unwrap();
        let id = check.on_deadline(due).start_probe.unwrap();
        // Not yet timed out.
        assert_eq!(check.on_deadline(due + ms(499)), DeadlineOutcome::default());
        let update = check.on_deadline(due + ms(500)).update.unwrap();
        assert_eq!(update.status, Status::Critical);
        assert_eq!(update.output, "Timed out (500ms) running check");
        assert_eq!(check.next_deadline(), Some(due + ms(1_500)));
        assert_eq!(
            check.probe_result(id, ProbeOutcome::Passing, "late", due + ms(600)),
            Err(CheckError::StaleProbe(id))
        );
        assert_eq!(check.status(), Status::Critical);
    }

    #[test]
    fn first_result_after_registration_applies_at_once_whatever_the_thresholds() {
        // Counters start at the thresholds.
        let mut check = probe_with(Hysteresis {
            success_before_passing: 3,
            failures_before_warning: None,
            failures_before_critical: 3,
        });
        let update = run_probe(&mut check, ProbeOutcome::Passing).unwrap();
        assert_eq!(update.status, Status::Passing);
    }

    #[test]
    fn success_before_passing_needs_that_many_consecutive_successes() {
        let mut check = probe_with(Hysteresis {
            success_before_passing: 3,
            failures_before_warning: None,
            failures_before_critical: 0,
        });
        run_probe(&mut check, ProbeOutcome::Passing);
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Critical)
                .unwrap()
                .status,
            Status::Critical
        );
        // Two successes are not enough; a failure resets the count.
        assert_eq!(run_probe(&mut check, ProbeOutcome::Passing), None);
        assert_eq!(run_probe(&mut check, ProbeOutcome::Passing), None);
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Critical),
            None,
            "already critical"
        );
        assert_eq!(run_probe(&mut check, ProbeOutcome::Passing), None);
        assert_eq!(run_probe(&mut check, ProbeOutcome::Passing), None);
        let update = run_probe(&mut check, ProbeOutcome::Passing).unwrap();
        assert_eq!(update.status, Status::Passing);
    }

    #[test]
    fn failures_before_critical_needs_that_many_consecutive_failures() {
        let mut check = probe_with(Hysteresis {
            success_before_passing: 0,
            failures_before_warning: None,
            failures_before_critical: 3,
        });
        run_probe(&mut check, ProbeOutcome::Passing);
        assert_eq!(run_probe(&mut check, ProbeOutcome::Critical), None);
        assert_eq!(run_probe(&mut check, ProbeOutcome::Critical), None);
        // A success resets the failure count (and applies at once).
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Passing),
            None,
            "same status and output"
        );
        assert_eq!(run_probe(&mut check, ProbeOutcome::Critical), None);
        assert_eq!(run_probe(&mut check, ProbeOutcome::Critical), None);
        assert_eq!(check.status(), Status::Passing);
        let update = run_probe(&mut check, ProbeOutcome::Critical).unwrap();
        assert_eq!(update.status, Status::Critical);
    }

    #[test]
    fn failures_before_warning_turns_warning_before_critical() {
        let mut check = probe_with(Hysteresis {
            success_before_passing: 0,
            failures_before_warning: Some(1),
            failures_before_critical: 3,
        });
        run_probe(&mut check, ProbeOutcome::Passing);
        let update = run_probe(&mut check, ProbeOutcome::Critical).unwrap();
        assert_eq!(update.status, Status::Warning, "first failure: warning");
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Critical),
            None,
            "still warning"
        );
        let update = run_probe(&mut check, ProbeOutcome::Critical).unwrap();
        assert_eq!(update.status, Status::Critical);
    }

    #[test]
    fn failures_before_warning_defaults_to_the_critical_threshold() {
        let mut check = probe_with(Hysteresis {
            success_before_passing: 0,
            failures_before_warning: None,
            failures_before_critical: 2,
        });
        run_probe(&mut check, ProbeOutcome::Passing);
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Critical),
            None,
            "no warning first"
        );
        assert_eq!(check.status(), Status::Passing);
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Critical)
                .unwrap()
                .status,
            Status::Critical
        );
    }

    #[test]
    fn warning_result_counts_as_a_success_and_resets_the_failures() {
        let mut check = probe_with(Hysteresis {
            success_before_passing: 0,
            failures_before_warning: None,
            failures_before_critical: 2,
        });
        run_probe(&mut check, ProbeOutcome::Passing);
        assert_eq!(run_probe(&mut check, ProbeOutcome::Critical), None);
        let update = run_probe(&mut check, ProbeOutcome::Warning).unwrap();
        assert_eq!(update.status, Status::Warning, "applied as is");
        assert_eq!(
            run_probe(&mut check, ProbeOutcome::Critical),
            None,
            "count restarted"
        );
        assert_eq!(check.status(), Status::Warning);
    }

    #[test]
    fn output_only_change_is_an_update_without_status_change() {
        let mut check = probe_with(Hysteresis::default());
        let due = check.next_deadline().unwrap();
        let id = check.on_deadline(due).start_probe.unwrap();
        let first = check
            .probe_result(id, ProbeOutcome::Passing, "a", due)
            .unwrap()
            .unwrap();
        assert!(first.status_changed());
        let due = check.next_deadline().unwrap();
        let id = check.on_deadline(due).start_probe.unwrap();
        let second = check
            .probe_result(id, ProbeOutcome::Passing, "b", due)
            .unwrap()
            .unwrap();
        assert!(!second.status_changed());
        let due = check.next_deadline().unwrap();
        let id = check.on_deadline(due).start_probe.unwrap();
        assert_eq!(
            check
                .probe_result(id, ProbeOutcome::Passing, "b", due)
                .unwrap(),
            None
        );
    }

    #[test]
    fn serf_health_follows_gossip() {
        let mut check = HealthCheck::new(CheckConfig::serf_health(), ms(0), &mut rng());
        assert_eq!(check.next_deadline(), None);
        let update = check
            .serf_member(MemberHealth::Alive, ms(10))
            .unwrap()
            .unwrap();
        assert_eq!(
            (update.status, update.output.as_str()),
            (Status::Passing, SERF_ALIVE_OUTPUT)
        );
        let update = check
            .serf_member(MemberHealth::Failed, ms(20))
            .unwrap()
            .unwrap();
        assert_eq!(
            (update.status, update.output.as_str()),
            (Status::Critical, SERF_FAILED_OUTPUT)
        );
        assert_eq!(
            check.serf_member(MemberHealth::Failed, ms(30)).unwrap(),
            None
        );
        assert_eq!(
            check.critical_for(ms(50)),
            Some(ms(30)),
            "critical since the first failure"
        );
        assert_eq!(
            check.ttl_update(Status::Passing, "", ms(40)),
            Err(CheckError::WrongKind)
        );
    }

    #[test]
    fn reap_timeout_is_raised_to_one_minute() {
        let mut config = CheckConfig::ttl(1_000);
        config.deregister_critical_service_after_ms = Some(10_000);
        assert_eq!(config.reap_after(), Some(DEREGISTER_CRITICAL_MIN));
        config.deregister_critical_service_after_ms = Some(90_000);
        assert_eq!(config.reap_after(), Some(ms(90_000)));
        config.deregister_critical_service_after_ms = Some(0);
        assert_eq!(config.reap_after(), None);
    }

    #[test]
    fn deregister_after_critical_removes_the_service_at_the_first_reaper_pass_past_the_timeout() {
        let mut config = CheckConfig::ttl(1_000);
        config.initial_status = Some(Status::Passing);
        config.deregister_critical_service_after_ms = Some(60_000);
        let mut check = HealthCheck::new(config, ms(0), &mut rng());
        let mut reaper = Reaper::new(ms(0));
        // Critical from 1 s (TTL expiry).
        check.on_deadline(ms(1_000));
        let node_check = HealthCheck::new(CheckConfig::serf_health(), ms(0), &mut rng());
        let mut removed = Vec::new();
        let mut when = None;
        while removed.is_empty() {
            let at = reaper.next_deadline();
            removed = reaper.on_deadline(at, [(Some("web"), &check), (None, &node_check)]);
            when = Some(at);
            assert!(at <= ms(200_000), "never reaped");
        }
        // Passes at 30, 60, 90 s: critical for 59 s at 60 s, 89 s at 90 s.
        assert_eq!(when, Some(ms(90_000)));
        assert_eq!(removed, vec!["web".to_string()]);
        assert_eq!(reaper.next_deadline(), ms(120_000));
    }

    #[test]
    fn recovering_before_the_timeout_resets_the_critical_time() {
        let mut config = CheckConfig::ttl(1_000);
        config.deregister_critical_service_after_ms = Some(60_000);
        let mut check = HealthCheck::new(config, ms(0), &mut rng());
        assert!(check.reapable(ms(60_001)));
        check.ttl_update(Status::Passing, "", ms(59_000)).unwrap();
        check.ttl_update(Status::Critical, "", ms(60_000)).unwrap();
        assert!(!check.reapable(ms(61_000)));
        assert!(!check.reapable(ms(120_000)), "not strictly longer");
        assert!(check.reapable(ms(120_001)));
    }
}

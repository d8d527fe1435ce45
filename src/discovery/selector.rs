//! A caller's endpoint set and how it picks an instance per call, after go-micro's
//! selector (`selector/strategy.go`, `selector/default.go`) and gRPC's `round_robin`
//! balancer, the one etcd's naming resolver (`client/v3/naming/resolver`) feeds.
//!
//! - **Random** (go-micro's default `Strategy: Random` in `NewSelector`): each pick
//!   draws uniformly among the instances not ejected, from the RNG passed in.
//! - **Round robin**: the instances in id order, one after the other, wrapping. Each
//!   change of the endpoint set starts over at a random position, as gRPC does
//!   (grpc-go `balancer/roundrobin`: a new picker per change, `next:
//!   rand.Intn(len(scs))`, "we don't want to apply excess load to the first server").
//!   go-micro's `RoundRobin` also starts at a random index, on every `Select`, so
//!   that across calls it is no better than random; this selector keeps one cursor
//!   per set, like gRPC.
//! - **Ejection** (off by default): after `eject_after_failures` consecutive failed
//!   calls to an instance ([`Selector::report`]), picks skip it for `eject_ms`; then
//!   it returns with a clean count. Off by default because go-micro's selector
//!   ignores call results: `registrySelector.Mark` and `Reset` have empty bodies
//!   (`selector/default.go`), so an error never takes a node out of rotation.
//! - **Nothing to pick.** [`Selector::pick`] says why: the set is empty, or every
//!   instance in it is ejected (and when the first one returns).
//!
//! Time is a monotonic [`Duration`] passed in by the caller; randomness comes from
//! the RNG passed in; the set is ordered, so a pick depends on nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use super::InstanceId;

/// How a caller picks among the instances it may call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Uniformly at random per call (go-micro's default).
    #[default]
    Random,
    /// In id order, wrapping, from a random start per set (gRPC's `round_robin`).
    #[serde(alias = "round_robin")]
    RoundRobin,
}

/// A selector's settings: in a scenario's TOML, `strategy = "random" |
/// "round-robin"`, `eject-after-failures`, `eject-ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SelectorConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Consecutive failed calls that eject an instance (0: never, the default).
    #[serde(default)]
    pub eject_after_failures: u32,
    /// How long an ejected instance is skipped, in ms (0 with ejection off).
    #[serde(default)]
    pub eject_ms: u64,
}

impl SelectorConfig {
    /// Whether failed calls eject instances.
    pub fn ejects(&self) -> bool {
        self.eject_after_failures > 0
    }
}

/// Why [`Selector::pick`] found no instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoInstance {
    /// The endpoint set is empty (go-micro's `ErrNoneAvailable`).
    Empty,
    /// Every instance in the set is ejected; the first returns at `until`.
    AllEjected {
        /// When the earliest ejection ends.
        until: Duration,
    },
}

/// What the selector remembers of one instance's recent calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Health {
    /// Failed calls since the last success or ejection.
    failures: u32,
    /// Skipped by picks until then.
    ejected_until: Option<Duration>,
}

/// A caller's endpoint set and its picking state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    config: SelectorConfig,
    endpoints: BTreeSet<InstanceId>,
    /// Round robin: the position in `endpoints` (id order) the next pick tries first.
    cursor: usize,
    /// Instances with failures or an ejection; only ones in `endpoints`.
    health: BTreeMap<InstanceId, Health>,
}

impl Selector {
    /// An empty selector.
    ///
    /// Panics if ejection is on (`eject_after_failures > 0`) with `eject_ms == 0`, or
    /// off with `eject_ms > 0`.
    pub fn new(config: SelectorConfig) -> Self {
        assert_eq!(
            config.ejects(),
            config.eject_ms > 0,
            "eject_after_failures and eject_ms must both be 0 (no ejection) or both > 0"
        );
        Selector {
            config,
            endpoints: BTreeSet::new(),
            cursor: 0,
            health: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SelectorConfig {
        &self.config
    }

    /// The current endpoint set.
    pub fn endpoints(&self) -> &BTreeSet<InstanceId> {
        &self.endpoints
    }

    /// Replaces the endpoint set (from a cache lookup or a watch update); returns
    /// whether it changed. On a change, instances that left lose their failure count
    /// and ejection, and round robin restarts at a random position drawn from `rng`
    /// (one draw, none if the new set is empty). An unchanged set draws nothing.
    pub fn set_endpoints(&mut self, endpoints: &BTreeSet<InstanceId>, rng: &mut impl Rng) -> bool {
        if *endpoints == self.endpoints {
            return false;
        }
        self.endpoints.clone_from(endpoints);
        self.health.retain(|id, _| endpoints.contains(id));
        self.cursor = if endpoints.is_empty() {
            0
        } else {
            rng.gen_range(0..endpoints.len())
        };
        true
    }

    /// Whether `instance` is ejected at `now` (false for an instance not in the set).
    pub fn is_ejected(&self, instance: InstanceId, now: Duration) -> bool {
        self.health
            .get(&instance)
            .and_then(|h| h.ejected_until)
            .is_some_and(|until| now < until)
    }

    /// Picks the instance for one call at `now`.
    ///
    /// Random draws one number from `rng` (an index among the instances not
    /// ejected); round robin draws nothing, takes the first instance not ejected at
    /// or after the cursor (wrapping) and moves the cursor past it.
    ///
    /// Errors: [`NoInstance::Empty`] for an empty set, [`NoInstance::AllEjected`]
    /// when every instance is ejected at `now`.
    pub fn pick(&mut self, now: Duration, rng: &mut impl Rng) -> Result<InstanceId, NoInstance> {
        if self.endpoints.is_empty() {
            return Err(NoInstance::Empty);
        }
        let ids: Vec<InstanceId> = self.endpoints.iter().copied().collect();
        let open = |id: &InstanceId| !self.is_ejected(*id, now);
        match self.config.strategy {
            Strategy::Random => {
                let candidates: Vec<InstanceId> = ids.iter().copied().filter(open).collect();
                if candidates.is_empty() {
                    return Err(self.all_ejected());
                }
                Ok(candidates[rng.gen_range(0..candidates.len())])
            }
            Strategy::RoundRobin => {
                let n = ids.len();
                let start = self.cursor % n;
                let Some(at) = (0..n).map(|k| (start + k) % n).find(|&i| open(&ids[i])) else {
                    return Err(self.all_ejected());
                };
                self.cursor = (at + 1) % n;
                Ok(ids[at])
            }
        }
    }

    fn all_ejected(&self) -> NoInstance {
        let until = self
            .health
            .values()
            .filter_map(|h| h.ejected_until)
            .min()
            .expect("every instance is ejected, so some ejection exists");
        NoInstance::AllEjected { until }
    }

    /// Records the result of a call to `instance` that ended at `now` (go-micro's
    /// `Mark`): a success clears its failure count; a failure counts, and the
    /// `eject_after_failures`-th in a row ejects it until `now + eject_ms` and clears
    /// the count. Without ejection, or for an instance no longer in the set, nothing
    /// changes. A failure reported while ejected (a call picked before) counts
    /// towards the next ejection and does not extend this one.
    pub fn report(&mut self, instance: InstanceId, ok: bool, now: Duration) {
        if !self.config.ejects() || !self.endpoints.contains(&instance) {
            return;
        }
        if ok {
            self.health.remove(&instance);
            return;
        }
        let eject_ms = self.config.eject_ms;
        let threshold = self.config.eject_after_failures;
        let health = self.health.entry(instance).or_default();
        if health.ejected_until.is_some_and(|until| until <= now) {
            health.ejected_until = None; // served its time
        }
        health.failures += 1;
        if health.failures >= threshold && health.ejected_until.is_none() {
            health.failures = 0;
            health.ejected_until = Some(now + Duration::from_millis(eject_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn set(ids: &[InstanceId]) -> BTreeSet<InstanceId> {
        ids.iter().copied().collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn selector(strategy: Strategy, eject_after_failures: u32, eject_ms: u64) -> Selector {
        Selector::new(SelectorConfig {
            strategy,
            eject_after_failures,
            eject_ms,
        })
    }

    #[test]
    fn empty_set_says_empty() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for strategy in [Strategy::Random, Strategy::RoundRobin] {
            let mut s = selector(strategy, 0, 0);
            assert_eq!(s.pick(ms(0), &mut rng), Err(NoInstance::Empty));
            s.set_endpoints(&set(&[1]), &mut rng);
            s.set_endpoints(&set(&[]), &mut rng);
            assert_eq!(s.pick(ms(0), &mut rng), Err(NoInstance::Empty));
        }
    }

    #[test]
    fn round_robin_goes_in_order_and_wraps() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut s = selector(Strategy::RoundRobin, 0, 0);
        s.set_endpoints(&set(&[10, 20, 30]), &mut rng);
        let picks: Vec<_> = (0..7).map(|_| s.pick(ms(0), &mut rng).unwrap()).collect();
        let order = [10, 20, 30];
        let first = order.iter().position(|&x| x == picks[0]).unwrap();
        let expected: Vec<_> = (0..7).map(|k| order[(first + k) % 3]).collect();
        assert_eq!(picks, expected);
    }

    #[test]
    fn round_robin_start_comes_from_the_rng_and_only_on_change() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut twin = rng.clone();
        let mut s = selector(Strategy::RoundRobin, 0, 0);
        assert!(s.set_endpoints(&set(&[1, 2, 3, 4, 5]), &mut rng));
        let start = twin.gen_range(0..5usize);
        assert_eq!(s.pick(ms(0), &mut rng), Ok(start as InstanceId + 1));
        // The same set again neither moves the cursor nor draws.
        assert!(!s.set_endpoints(&set(&[1, 2, 3, 4, 5]), &mut rng));
        assert_eq!(rng.gen::<u64>(), twin.gen::<u64>());
        assert_eq!(
            s.pick(ms(0), &mut rng),
            Ok((start + 1) as InstanceId % 5 + 1)
        );
        // Round robin draws nothing per pick.
        assert_eq!(rng.gen::<u64>(), twin.gen::<u64>());
    }

    #[test]
    fn starts_differ_across_seeds() {
        let starts: BTreeSet<InstanceId> = (0..32)
            .map(|seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut s = selector(Strategy::RoundRobin, 0, 0);
                s.set_endpoints(&set(&[1, 2, 3, 4]), &mut rng);
                s.pick(ms(0), &mut rng).unwrap()
            })
            .collect();
        assert!(starts.len() > 1, "the start is not random: {starts:?}");
    }

    #[test]
    fn random_is_the_rng_draw_and_deterministic() {
        let ids = [4, 8, 15, 16, 23, 42];
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = selector(Strategy::Random, 0, 0);
            s.set_endpoints(&set(&ids), &mut rng);
            (0..50)
                .map(|_| s.pick(ms(0), &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        // Exactly one gen_range over the candidates per pick, after the set's draw.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let _start = rng.gen_range(0..ids.len());
        let expected: Vec<_> = (0..50).map(|_| ids[rng.gen_range(0..ids.len())]).collect();
        assert_eq!(run(9), expected);
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
        assert!(expected.iter().collect::<BTreeSet<_>>().len() > 3);
    }

    #[test]
    fn ejection_after_consecutive_failures_and_its_expiry() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = selector(Strategy::RoundRobin, 2, 1000);
        s.set_endpoints(&set(&[1, 2]), &mut rng);
        s.report(1, false, ms(0));
        s.report(1, true, ms(1)); // a success breaks the run
        s.report(1, false, ms(2));
        assert!(!s.is_ejected(1, ms(2)));
        s.report(1, false, ms(100)); // second in a row
        assert!(s.is_ejected(1, ms(100)));
        assert!(s.is_ejected(1, ms(1099)));
        for _ in 0..5 {
            assert_eq!(s.pick(ms(500), &mut rng), Ok(2));
        }
        assert!(!s.is_ejected(1, ms(1100)));
        let back: BTreeSet<_> = (0..2)
            .map(|_| s.pick(ms(1100), &mut rng).unwrap())
            .collect();
        assert_eq!(back, set(&[1, 2]));
    }

    #[test]
    fn random_skips_ejected() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut s = selector(Strategy::Random, 1, 50);
        s.set_endpoints(&set(&[1, 2, 3]), &mut rng);
        s.report(2, false, ms(10));
        for _ in 0..40 {
            assert_ne!(s.pick(ms(59), &mut rng), Ok(2));
        }
        assert!((0..40).any(|_| s.pick(ms(60), &mut rng) == Ok(2)));
    }

    #[test]
    fn all_ejected_says_until_when() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for strategy in [Strategy::Random, Strategy::RoundRobin] {
            let mut s = selector(strategy, 1, 100);
            s.set_endpoints(&set(&[1, 2]), &mut rng);
            s.report(1, false, ms(10));
            s.report(2, false, ms(30));
            assert_eq!(
                s.pick(ms(50), &mut rng),
                Err(NoInstance::AllEjected { until: ms(110) })
            );
            assert_eq!(s.pick(ms(110), &mut rng), Ok(1));
        }
    }

    #[test]
    fn no_ejection_by_default() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = Selector::new(SelectorConfig::default());
        assert_eq!(s.config().strategy, Strategy::Random);
        s.set_endpoints(&set(&[1]), &mut rng);
        for t in 0..100 {
            s.report(1, false, ms(t));
        }
        assert_eq!(s.pick(ms(100), &mut rng), Ok(1));
    }

    #[test]
    fn leaving_the_set_forgets_health() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = selector(Strategy::RoundRobin, 1, 1000);
        s.set_endpoints(&set(&[1, 2]), &mut rng);
        s.report(1, false, ms(0));
        assert!(s.is_ejected(1, ms(1)));
        s.set_endpoints(&set(&[2]), &mut rng);
        s.set_endpoints(&set(&[1, 2]), &mut rng);
        assert!(!s.is_ejected(1, ms(1)));
        // Reports about instances outside the set are ignored.
        s.report(3, false, ms(1));
        assert!(!s.is_ejected(3, ms(1)));
    }

    #[test]
    fn failures_while_ejected_do_not_extend_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = selector(Strategy::RoundRobin, 1, 100);
        s.set_endpoints(&set(&[1, 2]), &mut rng);
        s.report(1, false, ms(0));
        s.report(1, false, ms(50)); // a call picked before the ejection
        assert!(!s.is_ejected(1, ms(100)));
    }

    #[test]
    #[should_panic(expected = "both be 0")]
    fn half_configured_ejection_panics() {
        selector(Strategy::Random, 3, 0);
    }
}

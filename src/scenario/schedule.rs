//! A seed's explicit fault schedule. Expanding the random generator before the run
//! makes the faults a plain list that can be saved, read, edited and run as is.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{
    Fault, FaultKind, FaultSpec, Members, RandomFaults, RangeMs, Scenario, ScenarioError, Target,
};
use crate::process::NodeId;
use crate::rng::{stream, Purpose};

/// One seed's faults as a plain list, and what else it changes in its scenario: the
/// `schedule.toml` of a run's artifacts, and what `--schedule` runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The seed the network, nodes and clients draw from.
    pub seed: u64,
    /// Replaces the scenario's `duration_ms` (a shrunk schedule's shorter fault phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Keys that replace the scenario's own in its `[workload]` table (a shrunk
    /// schedule's lighter load, e.g. `clients = 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<toml::Table>,
    /// The run's faults, in place of the scenario's own and its generator's; an
    /// expanded schedule lists them by start time, ties in file order.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// With `[random] swarm = true`: the fault kinds this seed enabled (what its
    /// generator drew from); for the record, the faults above are what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_kinds: Option<Vec<FaultKind>>,
}

impl Schedule {
    /// The scenario's faults and what its generator draws for `seed`; `clients` is
    /// how many clients the workload runs.
    /// The membership kinds of `[random]` draw nothing here: see
    /// [`Schedule::expand_with`].
    pub fn expand(scenario: &Scenario, seed: u64, clients: usize) -> Schedule {
        Schedule::expand_with(scenario, seed, clients, None, &[])
    }

    /// [`Schedule::expand`], drawing the membership kinds of `[random]` against the
    /// configuration that `bootstrap` and the member faults so far lead to (the
    /// scenario's own first: they are checked against it), so that every drawn change
    /// is valid where it stands. Without `bootstrap` those kinds draw nothing (so the
    /// faults drawn after one differ from the schedule with it: always expand a
    /// protocol's schedule with its bootstrap, as [`Scenario::schedule_for`] does).
    /// `classes` are the protocol's message classes, which a cut drawn with
    /// `[random] classes_rate` and no `class_sets` draws from (none: it drops all).
    pub fn expand_with(
        scenario: &Scenario,
        seed: u64,
        clients: usize,
        bootstrap: Option<&Members>,
        classes: &[&str],
    ) -> Schedule {
        let mut faults = scenario.faults.clone();
        if let Some(random) = &scenario.random {
            let mut members = bootstrap.map(|b| {
                let mut own: Vec<&Fault> = scenario.faults.iter().map(|f| &f.fault).collect();
                own.sort_by_key(|f| f.at_ms());
                let mut m = b.clone();
                for f in own {
                    // Validated: each is valid where it stands.
                    let _ = m.apply(f);
                }
                m
            });
            let drawn = generate(scenario, random, seed, clients, members.as_mut(), classes);
            faults.extend(drawn);
        }
        let swarm_kinds = scenario
            .random
            .as_ref()
            .filter(|r| r.swarm)
            .map(|r| swarm(r, seed).kinds);
        faults.sort_by_key(|f| f.at_ms()); // stable: ties keep file order
        Schedule {
            seed,
            duration_ms: None,
            workload: None,
            faults,
            swarm_kinds,
        }
    }

    /// The schedule with each targeted fault's `resolved` ids set from a run's
    /// record (fault index, ids it struck), so that it strikes them again.
    pub fn with_resolved(&self, resolved: &[(usize, Vec<NodeId>)]) -> Schedule {
        let mut schedule = self.clone();
        for (index, ids) in resolved {
            if let Some(fault) = schedule.faults.get_mut(*index) {
                assert!(fault.target.is_some(), "fault {index} has no target");
                fault.resolved = Some(ids.clone());
            }
        }
        schedule
    }

    /// Whether the schedule changes the scenario beyond its faults.
    pub fn overrides(&self) -> bool {
        self.duration_ms.is_some() || self.workload.is_some()
    }

    /// The schedule as a TOML file, headed by a comment on how to run it.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a schedule always serializes");
        format!("# faultline fault schedule: run it with `faultline run SCENARIO --schedule FILE`\n{body}")
    }

    /// Reads a schedule file and checks it against the scenario it will run with.
    pub fn load(path: &std::path::Path, scenario: &Scenario) -> Result<Schedule, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::file(&file, format!("cannot read: {e}")))?;
        let schedule: Schedule =
            toml::from_str(&text).map_err(|e| ScenarioError::toml(&file, &text, &e))?;
        let mut checked = scenario.with_overrides(&schedule)?;
        checked.file = file;
        checked.check_faults("faults", &schedule.faults)?;
        Ok(schedule)
    }
}

/// Draws faults from the generator, one stream per seed, respecting `max_down`.
fn generate(
    scenario: &Scenario,
    r: &RandomFaults,
    seed: u64,
    clients: usize,
    mut members: Option<&mut Members>,
    classes: &[&str],
) -> Vec<FaultSpec> {
    let mut rng = stream(seed, Purpose::Schedule, 0);
    let end_ms = r.end_ms.unwrap_or(scenario.duration_ms);
    // A swarm seed draws from its own kinds and interval; the others from the file's.
    let seed_swarm = r.swarm.then(|| swarm(r, seed));
    let (kinds, interval_ms) = match &seed_swarm {
        Some(s) => (&s.kinds, &s.interval_ms),
        None => (&r.kinds, &r.interval_ms),
    };
    let mut faults = Vec::new();
    // (node, from, to): down intervals so far, for `max_down` and no double crashes;
    // the file's own down faults count too.
    let mut downs: Vec<(NodeId, u64, u64)> = scenario
        .faults
        .iter()
        .filter_map(|f| Some((f.downed_node()?, f.at_ms(), f.end_ms().unwrap_or(u64::MAX))))
        .collect();
    let mut t = r.start_ms;
    // Each round moves `t` on by at least `interval_ms.min`, which validation keeps
    // above zero, and the loop ends at `end_ms`; at most `max_faults` rounds add one.
    while faults.len() < r.max_faults {
        t += rng.gen_range(interval_ms.min..=interval_ms.max);
        if t >= end_ms {
            break;
        }
        let until = (t + rng.gen_range(r.duration_ms.min..=r.duration_ms.max)).min(end_ms);
        let kind = *kinds
            .choose(&mut rng)
            .expect("validated: kinds is not empty");
        let fault = match kind.is_membership() {
            true => members
                .as_deref_mut()
                .and_then(|m| draw_member(scenario, r, kind, t, m, &mut rng)),
            false => draw(scenario, r, kind, (t, until), &mut downs, &mut rng, clients),
        };
        // A gray cut and a target are drawn only when asked for, so that other
        // scenarios draw as before.
        let fault = match fault {
            Some(f) if r.classes_rate > 0.0 && f.kind().is_cut() => {
                Some(match draw_classes(r, classes, &mut rng) {
                    Some(some) => f.with_classes(some),
                    None => f,
                })
            }
            other => other,
        };
        let target = match fault.as_ref() {
            Some(f) if r.target_rate > 0.0 && f.kind().targetable() => {
                draw_target(scenario.nodes, r, f, &mut downs, &mut rng)
            }
            _ => None,
        };
        faults.extend(fault.map(|f| match target {
            Some(target) => FaultSpec::targeted(f, target),
            None => f.into(),
        }));
    }
    faults
}

/// Whether the drawn `fault` names a role instead of its ids (with probability
/// `target_rate`), and which: one of `targets`, for a down fault only one that takes
/// down at most `max_down` nodes, and only when no other down fault overlaps it.
fn draw_target(
    n: usize,
    r: &RandomFaults,
    fault: &Fault,
    downs: &mut Vec<(NodeId, u64, u64)>,
    rng: &mut impl Rng,
) -> Option<Target> {
    if !rng.gen_bool(r.target_rate) {
        return None;
    }
    let down = fault.downed_node().is_some();
    let fits = |t: &&Target| !down || t.size(n).is_none_or(|size| size <= r.max_down);
    let candidates: Vec<&Target> = r.targets.iter().filter(fits).collect();
    let target = **candidates.choose(rng)?;
    if down {
        // Which nodes it takes down is known only when it starts, so no other down
        // fault may overlap it (see `Scenario::check_faults`): it stays untargeted
        // when one does, and it fills every down slot of its window when it is.
        let &(_, from, to) = downs.last().expect("a down fault's interval");
        let others = &downs[..downs.len() - 1];
        if others.iter().any(|&(_, a, b)| a < to && from < b) {
            return None;
        }
        // Placeholders: ids past the cluster, never drawn.
        downs.extend((0..r.max_down).map(|i| (n + i, from, to)));
    }
    Some(target)
}

/// The classes a drawn cut drops, with probability `classes_rate`: one of
/// `class_sets`, or without them a random non-empty proper subset of `classes` (each
/// with probability one half, drawn again while empty or whole, at most
/// [`CLASS_DRAWS_MAX`] times); `None`: every class.
fn draw_classes(r: &RandomFaults, classes: &[&str], rng: &mut impl Rng) -> Option<Vec<String>> {
    if !rng.gen_bool(r.classes_rate) {
        return None;
    }
    if !r.class_sets.is_empty() {
        return r.class_sets.choose(rng).cloned();
    }
    if classes.len() < 2 {
        return None;
    }
    for _ in 0..CLASS_DRAWS_MAX {
        let some: Vec<String> = classes
            .iter()
            .filter(|_| rng.gen_bool(0.5))
            .map(|c| c.to_string())
            .collect();
        if !some.is_empty() && some.len() < classes.len() {
            return Some(some);
        }
    }
    None
}

/// Draws of a class subset before a cut drops every class: with two classes or more,
/// each draw is a proper non-empty subset with probability at least one half.
const CLASS_DRAWS_MAX: usize = 32;

/// One swarm-testing seed's generator: its enabled kinds and its interval range.
pub(crate) struct Swarm {
    /// `kinds` of the file with the disabled ones left out (weights kept).
    pub(crate) kinds: Vec<FaultKind>,
    /// A range within the file's `interval_ms`.
    pub(crate) interval_ms: RangeMs,
}

/// Draws seed `seed`'s swarm configuration from its own stream, so that the faults'
/// stream is drawn as without swarm, from other kinds.
pub(crate) fn swarm(r: &RandomFaults, seed: u64) -> Swarm {
    let mut rng = stream(seed, Purpose::Swarm, 0);
    let mut distinct: Vec<FaultKind> = Vec::new();
    for &k in &r.kinds {
        if !distinct.contains(&k) {
            distinct.push(k);
        }
    }
    let mut enabled: Vec<FaultKind> = distinct
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(0.5))
        .collect();
    if enabled.is_empty() {
        enabled.push(distinct[crate::rng::index(&mut rng, 0..distinct.len())]);
    }
    let a = rng.gen_range(r.interval_ms.min..=r.interval_ms.max);
    let b = rng.gen_range(r.interval_ms.min..=r.interval_ms.max);
    Swarm {
        kinds: r
            .kinds
            .iter()
            .copied()
            .filter(|k| enabled.contains(k))
            .collect(),
        interval_ms: RangeMs {
            min: a.min(b),
            max: a.max(b),
        },
    }
}

/// One drawn membership fault of `kind` at `t`, valid in `members`, which it then
/// updates; `None` when no node fits (nothing to add, or no removable member).
pub(crate) fn draw_member(
    scenario: &Scenario,
    r: &RandomFaults,
    kind: FaultKind,
    t: u64,
    members: &mut Members,
    rng: &mut impl Rng,
) -> Option<Fault> {
    let n = scenario.nodes;
    let fault = match kind {
        FaultKind::MemberAdd => {
            // A learner may be promoted; a voter cannot be added again.
            let candidates: Vec<_> = (0..n).filter(|&x| !members.voters.contains(&x)).collect();
            let node = *candidates.choose(rng)?;
            let learner = !members.is_member(node)
                && r.member_learner_rate > 0.0
                && rng.gen_bool(r.member_learner_rate);
            Fault::MemberAdd {
                at_ms: t,
                node,
                learner,
                timeout_ms: draw_timeout(r, rng),
            }
        }
        FaultKind::MemberRemove | FaultKind::MemberReplace => {
            let candidates: Vec<_> = (0..n).filter(|&x| members.removable(x).is_ok()).collect();
            let node = *candidates.choose(rng)?;
            match kind {
                FaultKind::MemberRemove => Fault::MemberRemove {
                    at_ms: t,
                    node,
                    timeout_ms: draw_timeout(r, rng),
                },
                _ => Fault::MemberReplace { at_ms: t, node },
            }
        }
        _ => unreachable!("not a membership kind: {kind:?}"),
    };
    members.apply(&fault).expect("drawn valid");
    Some(fault)
}

/// A drawn member change's command timeout: from `member_timeout_ms` when set (and
/// only then drawn, so that other scenarios draw as before).
fn draw_timeout(r: &RandomFaults, rng: &mut impl Rng) -> Option<u64> {
    r.member_timeout_ms
        .map(|range| rng.gen_range(range.min..=range.max))
}

/// One drawn fault of `kind` over `[t, until)`: its targets and values from `rng`, in
/// the order the generator has always drawn them (a change would change every seed's
/// schedule). `downs` holds the down intervals so far, for `max_down`; a down fault
/// that finds no node to take down is `None`.
pub(crate) fn draw(
    scenario: &Scenario,
    r: &RandomFaults,
    kind: FaultKind,
    (t, until): (u64, u64),
    downs: &mut Vec<(NodeId, u64, u64)>,
    mut rng: &mut impl Rng,
    clients: usize,
) -> Option<Fault> {
    let n = scenario.nodes;
    let heal = (until > t).then_some(until);
    match kind {
        FaultKind::Partition => {
            let mut nodes: Vec<_> = (0..n).collect();
            nodes.shuffle(&mut rng);
            let cut = crate::rng::index(&mut rng, 1..n);
            Some(Fault::Partition {
                at_ms: t,
                heal_ms: heal,
                permanent: false,
                groups: vec![nodes[..cut].to_vec()],
                classes: Vec::new(),
            })
        }
        FaultKind::OneWay => {
            let mut nodes: Vec<_> = (0..n).collect();
            nodes.shuffle(&mut rng);
            let cut = crate::rng::index(&mut rng, 1..n);
            let (from, to) = nodes.split_at(cut);
            Some(Fault::OneWay {
                at_ms: t,
                heal_ms: heal,
                permanent: false,
                from: from.to_vec(),
                to: to.to_vec(),
                classes: Vec::new(),
            })
        }
        FaultKind::Bridge => {
            let mut nodes: Vec<_> = (0..n).collect();
            nodes.shuffle(&mut rng);
            let bridge = nodes.pop().expect("validated: at least 3 nodes");
            let cut = crate::rng::index(&mut rng, 1..nodes.len());
            let (left, right) = nodes.split_at(cut);
            Some(Fault::Bridge {
                at_ms: t,
                heal_ms: heal,
                permanent: false,
                bridge,
                left: left.to_vec(),
                right: right.to_vec(),
                classes: Vec::new(),
            })
        }
        FaultKind::Isolate => Some(Fault::Isolate {
            at_ms: t,
            heal_ms: heal,
            permanent: false,
            node: crate::rng::index(&mut rng, 0..n),
            classes: Vec::new(),
        }),
        FaultKind::Crash | FaultKind::Pause | FaultKind::DiskWipe => {
            let down_at = |node: NodeId| {
                downs
                    .iter()
                    .any(|&(d, a, b)| d == node && a < until && t < b)
            };
            let concurrent = downs
                .iter()
                .filter(|&&(_, a, b)| a < until && t < b)
                .count();
            let candidates: Vec<_> = (0..n).filter(|&node| !down_at(node)).collect();
            match (concurrent < r.max_down, candidates.choose(&mut rng)) {
                (true, Some(&node)) => {
                    downs.push((node, t, until));
                    Some(match kind {
                        FaultKind::Crash => {
                            let torn = rng.gen_bool(r.torn_rate);
                            Fault::Crash {
                                at_ms: t,
                                restart_ms: heal,
                                permanent: false,
                                node,
                                torn,
                            }
                        }
                        FaultKind::DiskWipe => Fault::DiskWipe {
                            at_ms: t,
                            restart_ms: heal,
                            permanent: false,
                            node,
                        },
                        _ => Fault::Pause {
                            at_ms: t,
                            resume_ms: heal,
                            permanent: false,
                            node,
                        },
                    })
                }
                _ => None,
            }
        }
        FaultKind::ClockStep => Some(Fault::ClockStep {
            at_ms: t,
            node: crate::rng::index(&mut rng, 0..n),
            offset_ms: rng.gen_range(-r.clock_offset_ms_max..=r.clock_offset_ms_max),
        }),
        FaultKind::ClockDrift => {
            let drift_ppm =
                (rng.gen_range(-r.drift_ppm_max..=r.drift_ppm_max) * 10.0).round() / 10.0;
            Some(Fault::ClockDrift {
                at_ms: t,
                node: crate::rng::index(&mut rng, 0..n),
                drift_ppm,
            })
        }
        FaultKind::ClockFreeze => Some(Fault::ClockFreeze {
            at_ms: t,
            heal_ms: heal,
            permanent: false,
            node: crate::rng::index(&mut rng, 0..n),
        }),
        FaultKind::DiskStall => Some(Fault::DiskStall {
            at_ms: t,
            heal_ms: heal,
            permanent: false,
            node: crate::rng::index(&mut rng, 0..n),
        }),
        FaultKind::DiskSlow => Some(Fault::DiskSlow {
            at_ms: t,
            heal_ms: heal,
            permanent: false,
            node: crate::rng::index(&mut rng, 0..n),
            factor: r.disk_slow_factor,
        }),
        FaultKind::FsyncError => Some(Fault::FsyncError {
            at_ms: t,
            node: crate::rng::index(&mut rng, 0..n),
        }),
        FaultKind::LatencySpike => {
            let nodes = if rng.gen_bool(0.3) {
                Vec::new()
            } else {
                vec![crate::rng::index(&mut rng, 0..n)]
            };
            Some(Fault::LatencySpike {
                at_ms: t,
                heal_ms: heal,
                permanent: false,
                nodes,
                links: Vec::new(),
                delay: r.spike.clone(),
            })
        }
        FaultKind::Loss => {
            // Drawn only when asked for, so that older scenarios draw as before.
            let nodes = match r.loss_per_node > 0.0 && rng.gen_bool(r.loss_per_node) {
                true => vec![crate::rng::index(&mut rng, 0..n)],
                false => Vec::new(),
            };
            Some(Fault::Loss {
                at_ms: t,
                heal_ms: heal,
                permanent: false,
                rate: r.loss_rate,
                nodes,
                links: Vec::new(),
                classes: Vec::new(),
            })
        }
        FaultKind::Duplicate => Some(Fault::Duplicate {
            at_ms: t,
            heal_ms: heal,
            permanent: false,
            rate: r.duplicate_rate,
            nodes: Vec::new(),
            links: Vec::new(),
        }),
        FaultKind::Hold => {
            let mut nodes: Vec<_> = (0..n).collect();
            nodes.shuffle(&mut rng);
            let cut = crate::rng::index(&mut rng, 1..n);
            let (from, to) = nodes.split_at(cut);
            Some(Fault::Hold {
                at_ms: t,
                heal_ms: heal,
                permanent: false,
                from: from.to_vec(),
                to: to.to_vec(),
                shuffle: false,
                classes: Vec::new(),
            })
        }
        FaultKind::Slow => Some(Fault::Slow {
            at_ms: t,
            heal_ms: heal,
            permanent: false,
            node: crate::rng::index(&mut rng, 0..n),
            delay: r.slow_delay.clone(),
            busy: false,
            timers: true,
        }),
        // Validated: a workload with a random client fault has a client.
        FaultKind::ClientPartition => {
            let mut nodes: Vec<_> = (0..n).collect();
            nodes.shuffle(&mut rng);
            let cut = crate::rng::index(&mut rng, 1..n.max(2));
            Some(Fault::ClientPartition {
                at_ms: t,
                heal_ms: heal,
                clients: vec![crate::rng::index(&mut rng, 0..clients)],
                nodes: nodes[..cut].to_vec(),
            })
        }
        FaultKind::ClientPause => Some(Fault::ClientPause {
            at_ms: t,
            resume_ms: heal,
            client: crate::rng::index(&mut rng, 0..clients),
        }),
        FaultKind::ClientPin => Some(Fault::ClientPin {
            at_ms: t,
            heal_ms: heal,
            client: crate::rng::index(&mut rng, 0..clients),
            node: crate::rng::index(&mut rng, 0..n),
        }),
        // Drawn against a configuration: see `draw_member`.
        FaultKind::MemberAdd | FaultKind::MemberRemove | FaultKind::MemberReplace => None,
        // Refused in `random.kinds` at load.
        FaultKind::ServiceUnhealthy | FaultKind::ServiceHang => None,
    }
}

//! Swarm testing (`[random] swarm = true`): each seed draws from its own subset of the
//! fault kinds, written into its schedule; without the switch, schedules are as before.

use std::collections::BTreeSet;

use faultline::scenario::{FaultKind, Scenario};

fn scenario(name: &str) -> Scenario {
    Scenario::find(name).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn each_swarm_seed_draws_only_from_its_own_recorded_kinds() {
    let swarm = scenario("raft-nemesis-swarm");
    let all: BTreeSet<FaultKind> = swarm
        .random
        .as_ref()
        .expect("[random]")
        .kinds
        .iter()
        .copied()
        .collect();
    let mut subsets = BTreeSet::new();
    for seed in 0..20 {
        let schedule = swarm.schedule(seed, 5);
        let kinds = schedule
            .swarm_kinds
            .clone()
            .expect("a swarm schedule records its kinds");
        let enabled: BTreeSet<FaultKind> = kinds.iter().copied().collect();
        assert!(!enabled.is_empty(), "seed {seed}: at least one kind");
        assert!(enabled.is_subset(&all), "seed {seed}: {enabled:?}");
        for fault in &schedule.faults {
            assert!(
                enabled.contains(&fault.kind()),
                "seed {seed}: {fault:?} not in {enabled:?}"
            );
        }
        assert_eq!(
            schedule,
            swarm.schedule(seed, 5),
            "seed {seed}: deterministic"
        );
        subsets.insert(kinds);
    }
    assert!(
        subsets.len() >= 10,
        "seeds differ in their kinds: {} subsets",
        subsets.len()
    );
}

#[test]
fn without_swarm_a_schedule_records_no_kinds_and_draws_from_all() {
    let plain = scenario("raft-nemesis");
    let mut seen = BTreeSet::new();
    for seed in 0..5 {
        let schedule = plain.schedule(seed, 5);
        assert_eq!(schedule.swarm_kinds, None);
        seen.extend(schedule.faults.iter().map(|f| f.kind()));
    }
    assert!(
        seen.len() > 10,
        "every seed mixes nearly every kind: {seen:?}"
    );
}

#[test]
fn a_swarm_schedule_replays_through_its_toml() {
    let swarm = scenario("raft-nemesis-swarm");
    let schedule = swarm.schedule(7, 5);
    let text = schedule.to_toml();
    assert!(text.contains("swarm_kinds = ["), "{text}");
    let dir = std::env::temp_dir().join(format!("faultline-swarm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("schedule.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded =
        faultline::scenario::Schedule::load(&path, &swarm).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded, schedule);
    std::fs::remove_dir_all(&dir).unwrap();
}

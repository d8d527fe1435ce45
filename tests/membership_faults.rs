//! Member faults (`member-add`, `member-remove`, `member-replace`): the
//! etcd-membership-churn scenario passes a CI-sized sweep (the 500-seed release run is
//! recorded in results/raft/membership.md), member faults replay exactly, bad input is
//! refused at load naming the field, and a change the cluster refuses at runtime is
//! recorded by the operator.

use std::process::Command;
use std::sync::Arc;

use faultline::broadcast::Broadcast;
use faultline::raft::RaftKv;
use faultline::run::run_seed;
use faultline::scenario::{Fault, Scenario, Schedule};
use faultline::testing;

#[test]
fn etcd_membership_churn_passes_a_few_dozen_seeds() {
    // FAULTLINE_SEED / FAULTLINE_SEEDS may narrow the range: judge the seeds that ran.
    let summary = testing::check_seeds::<RaftKv>("etcd-membership-churn", 0..24);
    assert!(summary.seeds_run > 0);
    assert_eq!(summary.passed, summary.seeds_run);
    for run in &summary.runs {
        let m = &run.metrics;
        assert!(m.contains_key("leader_after_heal_ms"), "seed {}", run.seed);
        assert!(m["ops_ok"] > 0.0, "seed {}", run.seed);
    }
    if testing::seeds_from_env().is_some() {
        return; // A rerun of chosen seeds: the sweep-wide figures below need the sweep.
    }
    let mean = |name: &str| {
        summary
            .metrics
            .get(name)
            .unwrap_or_else(|| panic!("no metric {name}"))
            .mean
    };
    // The membership really changed, replacements really wiped disks.
    assert!(mean("member_changes_committed") > 3.0);
    assert!(mean("fault_member-replace_disks_wiped") > 0.5);
    assert!(mean("crashes") > 1.0);
}

fn churn() -> Scenario {
    Scenario::find("etcd-membership-churn").unwrap_or_else(|e| panic!("{e}"))
}

/// Member faults replay exactly, from the scenario and from the schedule.toml a run
/// writes; so do raft-nemesis-members' command timeouts and gray cuts.
#[test]
fn member_faults_replay_exactly() {
    for (s, seed) in [(churn(), 3), (churn(), 7), (members_nemesis(), 3)] {
        let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
        let schedule = s.schedule_for(seed, &setup);
        assert!(
            schedule.faults.iter().any(|f| f.kind().is_membership()),
            "seed {seed} draws no member fault"
        );
        let a = run_seed::<RaftKv>(&s, &setup, &schedule, false);
        let b = run_seed::<RaftKv>(&s, &setup, &schedule, false);
        assert!(a.failure.is_none(), "{:?}", a.failure);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        // Through schedule.toml: the chosen nodes are written down, so the file
        // replays the same run.
        let reread: Schedule = toml::from_str(&schedule.to_toml()).unwrap();
        assert_eq!(reread, schedule);
        let c = run_seed::<RaftKv>(&s, &setup, &reread, false);
        assert_eq!(
            a.trace_hash, c.trace_hash,
            "seed {seed} from its schedule.toml"
        );
    }
}

#[test]
fn drawn_member_faults_are_valid_in_the_tracked_configuration() {
    let s = churn();
    let setup = s.setup::<RaftKv>(&[]).unwrap();
    for seed in 0..50 {
        let schedule = s.schedule_for(seed, &setup);
        let bootstrap = faultline::System::bootstrap_members(&setup);
        s.check_members("faults", &schedule.faults, bootstrap.as_ref())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    // Without the protocol's bootstrap configuration, membership kinds draw nothing.
    let plain = s.schedule(5, <RaftKv as faultline::System>::clients(&setup));
    assert!(plain.faults.iter().all(|f| !f.kind().is_membership()));
}

const RAFT: &str = r#"
name = "m"
description = "membership"
duration_ms = 5000

[cluster]
protocol = "raft"
nodes = 5

[cluster.config]
initial_voters = 3

[workload]
clients = 1
"#;

fn raft_error(faults: &str) -> String {
    let text = format!("{RAFT}\n{faults}");
    Scenario::parse("m.toml", &text)
        .and_then(|s| s.setup::<RaftKv>(&[]).map(|_| ()))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_valid_member_sequence_loads() {
    let text = format!(
        "{RAFT}\n{}",
        r#"
[[faults]]
kind = "member-add"
at_ms = 100
node = 3
learner = true

[[faults]]
kind = "member-add"
at_ms = 200
node = 3

[[faults]]
kind = "member-replace"
at_ms = 300
node = 0

[[faults]]
kind = "member-remove"
at_ms = 400
node = 1
"#
    );
    let s = Scenario::parse("m.toml", &text).unwrap();
    s.setup::<RaftKv>(&[]).unwrap();
}

#[test]
fn adding_a_member_twice_is_refused() {
    let e = raft_error(
        r#"
[[faults]]
kind = "member-add"
at_ms = 100
node = 1
"#,
    );
    assert!(e.contains("m.toml"), "{e}");
    assert!(e.contains("faults[0].node"), "{e}");
    assert!(e.contains("node 1 is already a voter"), "{e}");
    // Tracked through the earlier faults, in start-time order (not file order).
    let e = raft_error(
        r#"
[[faults]]
kind = "member-add"
at_ms = 900
node = 4

[[faults]]
kind = "member-add"
at_ms = 100
node = 4
learner = true

[[faults]]
kind = "member-add"
at_ms = 500
node = 4
learner = true
"#,
    );
    assert!(e.contains("faults[2].node"), "{e}");
    assert!(e.contains("node 4 is already a learner"), "{e}");
}

#[test]
fn removing_the_last_voter_is_refused() {
    let e = raft_error(
        r#"
[[faults]]
kind = "member-remove"
at_ms = 100
node = 0

[[faults]]
kind = "member-remove"
at_ms = 200
node = 1

[[faults]]
kind = "member-replace"
at_ms = 300
node = 2
"#,
    );
    assert!(e.contains("faults[2].node"), "{e}");
    assert!(e.contains("would leave no voter"), "{e}");
    let e = raft_error(
        r#"
[[faults]]
kind = "member-remove"
at_ms = 100
node = 4
"#,
    );
    assert!(e.contains("faults[0].node"), "{e}");
    assert!(e.contains("node 4 is not a member"), "{e}");
}

#[test]
fn a_member_fault_out_of_range_is_refused() {
    let e = raft_error(
        r#"
[[faults]]
kind = "member-add"
at_ms = 100
node = 5
"#,
    );
    assert!(e.contains("faults[0].node"), "{e}");
    assert!(e.contains("node 5 is out of range"), "{e}");
}

#[test]
fn member_faults_need_a_protocol_with_membership() {
    let base = r#"
name = "b"
description = "no membership"
duration_ms = 1000

[cluster]
protocol = "broadcast"
nodes = 3
"#;
    let load = |extra: &str| {
        Scenario::parse("b.toml", &format!("{base}\n{extra}"))
            .and_then(|s| s.setup::<Broadcast>(&[]).map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    let e = load(
        r#"
[[faults]]
kind = "crash"
at_ms = 10
node = 0

[[faults]]
kind = "member-remove"
at_ms = 100
node = 1
"#,
    );
    assert!(e.contains("faults[1].kind"), "{e}");
    assert!(e.contains("no membership changes"), "{e}");
    let e = load(
        r#"
[random]
kinds = ["crash", "member-add"]
"#,
    );
    assert!(e.contains("random.kinds"), "{e}");
}

#[test]
fn bad_member_faults_exit_2_from_the_cli() {
    let dir = std::env::temp_dir().join(format!("faultline-member-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("m.toml");
    let text = format!(
        "{RAFT}\n{}",
        r#"
[[faults]]
kind = "member-add"
at_ms = 100
node = 0
"#
    );
    std::fs::write(&file, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .current_dir(&dir)
        .args(["run", file.to_str().unwrap(), "--seed", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("faults[0].node"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_change_refused_at_runtime_is_recorded() {
    // A schedule is run as written: here the operator asks to add a voter the cluster
    // already has, and the leader refuses it.
    let text = format!(
        "{RAFT}\n{}",
        r#"
[[faults]]
kind = "member-add"
at_ms = 1000
node = 3
"#
    );
    let s = Scenario::parse("m.toml", &text).unwrap();
    let setup = Arc::new(s.setup::<RaftKv>(&[]).unwrap());
    let mut schedule = s.schedule_for(1, &setup);
    schedule.faults.push(
        Fault::MemberAdd {
            at_ms: 2000,
            node: 0,
            learner: false,
            timeout_ms: None,
        }
        .into(),
    );
    let out = run_seed::<RaftKv>(&s, &setup, &schedule, false);
    assert!(out.failure.is_none(), "{:?}", out.failure);
    let m = &out.metrics;
    assert_eq!(m["member_changes_committed"], 1.0, "{m:?}");
    assert_eq!(m["member_changes_refused"], 1.0, "{m:?}");
    assert_eq!(m["member_changes_abandoned"], 0.0, "{m:?}");
    assert_eq!(m["fault_member-add_changes_refused"], 1.0, "{m:?}");
}

fn members_nemesis() -> Scenario {
    Scenario::find("raft-nemesis-members").unwrap_or_else(|e| panic!("{e}"))
}

/// raft-nemesis-members draws a command timeout for every member change within its
/// `member_timeout_ms`, and restricts about half of its cuts (`classes_rate = 0.5`)
/// to one of its `class_sets`; a scenario without those keys draws neither.
#[test]
fn drawn_command_timeouts_and_gray_cuts_follow_the_generator() {
    let s = members_nemesis();
    let r = s.random.clone().expect("a generator");
    let range = r.member_timeout_ms.expect("member_timeout_ms");
    let setup = s.setup::<RaftKv>(&[]).unwrap();
    let (mut cuts, mut gray, mut changes) = (0, 0, 0);
    for seed in 0..20 {
        for f in s.schedule_for(seed, &setup).faults {
            match &f.fault {
                Fault::MemberAdd { timeout_ms, .. } | Fault::MemberRemove { timeout_ms, .. } => {
                    let ms = timeout_ms.unwrap_or_else(|| panic!("seed {seed}: {f:?}"));
                    assert!((range.min..=range.max).contains(&ms), "seed {seed}: {ms}");
                    changes += 1;
                }
                _ if f.kind().is_cut() => {
                    cuts += 1;
                    if !f.classes().is_empty() {
                        assert!(r.class_sets.iter().any(|set| set == f.classes()), "{f:?}");
                        gray += 1;
                    }
                }
                _ => {}
            }
        }
    }
    assert!(
        changes > 100 && cuts > 100,
        "{changes} changes, {cuts} cuts"
    );
    let share = gray as f64 / cuts as f64;
    assert!((0.4..0.6).contains(&share), "{gray} of {cuts} cuts gray");
    // The churn scenario sets neither: its changes wait for a final answer and its cuts
    // drop every class.
    let churn = churn();
    let setup = churn.setup::<RaftKv>(&[]).unwrap();
    for f in churn.schedule_for(3, &setup).faults {
        assert!(f.classes().is_empty(), "{f:?}");
        if let Fault::MemberAdd { timeout_ms, .. } | Fault::MemberRemove { timeout_ms, .. } =
            &f.fault
        {
            assert_eq!(*timeout_ms, None, "{f:?}");
        }
    }
}

/// Without `class_sets`, a gray cut drops a random non-empty proper subset of the
/// protocol's classes, and different cuts drop different subsets.
#[test]
fn without_class_sets_a_gray_cut_drops_a_random_proper_subset() {
    let text = std::fs::read_to_string("scenarios/raft-nemesis-members.toml")
        .unwrap()
        .replace("classes_rate = 0.5", "classes_rate = 1.0")
        .replace(
            "class_sets = [[\"append\", \"heartbeat\", \"snapshot\"], [\"vote\", \"pre-vote\"]]\n",
            "",
        );
    let s = Scenario::parse("gray.toml", &text).unwrap();
    assert!(s.random.as_ref().unwrap().class_sets.is_empty());
    let setup = s.setup::<RaftKv>(&[]).unwrap();
    let all = <<RaftKv as faultline::System>::Process as faultline::Process>::message_classes();
    let mut seen = std::collections::BTreeSet::new();
    for f in s.schedule_for(1, &setup).faults {
        if f.kind().is_cut() {
            let classes = f.classes();
            assert!(!classes.is_empty() && classes.len() < all.len(), "{f:?}");
            assert!(classes.iter().all(|c| all.contains(&c.as_str())), "{f:?}");
            seen.insert(classes.to_vec());
        }
    }
    assert!(seen.len() > 5, "{seen:?}");
}

#[test]
fn bad_gray_cut_and_command_timeout_settings_name_their_field() {
    for (keys, expected) in [
        (
            "classes_rate = 0.5\nclass_sets = [[\"append\", \"ack\"]]",
            "m.toml: random.class_sets[0]: unknown message class `ack` for protocol raft",
        ),
        (
            "class_sets = [[]]",
            "random.class_sets[0]: names no message class",
        ),
        (
            "classes_rate = 1.5",
            "random.classes_rate: 1.5 is not a probability",
        ),
        (
            "member_timeout_ms = { min = 0, max = 500 }",
            "random.member_timeout_ms: needs 0 < min <= max",
        ),
        (
            "member_timeout_ms = { min = 600, max = 500 }",
            "random.member_timeout_ms: needs 0 < min <= max",
        ),
    ] {
        let e = raft_error(&format!(
            "[random]\nkinds = [\"member-add\", \"isolate\"]\n{keys}"
        ));
        assert!(e.contains(expected), "{keys}: {e}");
    }
}

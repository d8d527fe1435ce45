//! Every lesson of the catalogue runs and fails as the catalogue says (the check,
//! the metric bounds, the ladder's rung for key-value lessons); unknown names are
//! refused with the list.

use std::process::Command;

use faultline::lessons::{catalogue, find, run};

#[test]
fn the_catalogue_has_the_lessons_it_promises() {
    let all = catalogue().unwrap();
    assert!(all.len() >= 12, "{} lessons", all.len());
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    for topic in [
        "split-brain",
        "figure8",
        "stale-read-follower",
        "stale-read-leader-local",
        "stale-read-lease",
        "lease-read-clock-drift",
        "lease-read-vm-freeze",
        "lost-write",
        "send-before-persist",
        "false-suspicion-swim",
        "false-suspicion-lifeguard",
        "zombie-service",
        "flapping-check",
        "ttl-across-restart",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(topic)),
            "no lesson on {topic}: {names:?}"
        );
    }
    for l in &all {
        let schedule = faultline::lessons::dir().join(&l.schedule);
        assert!(
            schedule.is_file(),
            "{}: {} missing",
            l.name,
            schedule.display()
        );
        let raft = l.scenario.starts_with("raft-");
        assert_eq!(
            l.rung.is_some(),
            raft,
            "{}: a rung for key-value lessons",
            l.name
        );
    }
}

#[test]
fn every_lesson_fails_as_the_catalogue_says() {
    let out = std::env::temp_dir().join(format!("faultline-lessons-{}", std::process::id()));
    let protocols = faultline::registry::protocols();
    for lesson in catalogue().unwrap() {
        let r = run(&lesson, &protocols, &out).unwrap();
        if let Err(e) = &r.as_expected {
            panic!("lesson {}: {e}", lesson.name);
        }
        let report = &r.summary.runs[0];
        assert_eq!(
            report.failure.as_ref().map(|f| f.check.clone()),
            lesson.failure.clone(),
            "{}",
            lesson.name
        );
        if let Some(rung) = &lesson.rung {
            let level = r.ladder.as_ref().and_then(|l| l.level()).unwrap();
            assert_eq!(level.name(), rung, "{}", lesson.name);
        }
        let schedule =
            std::fs::read_to_string(faultline::lessons::dir().join(&lesson.schedule)).unwrap();
        let faults_after = schedule.matches("[[faults]]").count();
        assert!(faults_after <= lesson.faults_before, "{}", lesson.name);
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_unknown_lesson_is_refused_with_the_names() {
    let e = find("no-such-lesson").unwrap_err();
    assert!(
        e.contains("figure8") && e.contains("stale-read-follower"),
        "{e}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["lessons", "no-such-lesson"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the lessons are:") && stderr.contains("figure8"),
        "{stderr}"
    );
}

#[test]
fn the_lessons_command_lists_every_lesson() {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("lessons")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = catalogue().unwrap();
    assert_eq!(stdout.lines().count(), all.len());
    for l in &all {
        assert!(stdout.contains(&l.name), "{} not listed", l.name);
    }
}

//! Each fault type, shown by its effect on a probe cluster.

mod common;

use common::{metric, probe_run, probe_scenario};

#[test]
fn one_way_partition_delivers_in_one_direction_only() {
    // Quiet network settings so every count is exact: no loss, constant latency.
    let s = probe_scenario(
        3,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "one-way"
        at_ms = 0
        from = [0]
        to = [1]
        "#,
    );
    let (summary, m) = probe_run(&s, 1);
    assert_eq!(summary.failed, 0);
    assert_eq!(metric(&m, "recv_0_to_1"), 0.0, "0 -> 1 is cut");
    assert!(metric(&m, "recv_1_to_0") > 150.0, "1 -> 0 still works");
    assert!(metric(&m, "recv_0_to_2") > 150.0, "0 -> 2 is untouched");
}

#[test]
fn a_partition_heals_at_its_heal_time() {
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "partition"
        at_ms = 0
        heal_ms = 1000
        groups = [[0], [1]]
        "#,
    );
    let (_, m) = probe_run(&s, 1);
    // Pings every 10 ms; only the second half of the fault phase gets through (plus
    // the liveness phase, which ends as soon as the run settles).
    let received = metric(&m, "recv_0_to_1");
    assert!(
        (95.0..=105.0).contains(&received),
        "received {received} pings"
    );
}

#[test]
fn duplication_rate_is_measured_within_20_percent_over_10000_messages() {
    let s = probe_scenario(
        2,
        5_100,
        r#"
        [network]
        duplicate = 0.1
        [cluster.config]
        ping_ms = 1
        "#,
    );
    let (_, m) = probe_run(&s, 3);
    let sent = metric(&m, "messages_sent");
    assert!(sent >= 10_000.0, "only {sent} messages");
    let rate = metric(&m, "messages_duplicated") / sent;
    assert!((0.08..=0.12).contains(&rate), "duplication rate {rate}");
    let delivered = metric(&m, "messages_delivered");
    assert!(
        delivered > sent,
        "duplicates are delivered too: {delivered} of {sent}"
    );
}

#[test]
fn loss_rate_drops_that_share_of_messages() {
    let s = probe_scenario(
        2,
        5_100,
        "[network]\nloss = 0.25\n[cluster.config]\nping_ms = 1\n",
    );
    let (_, m) = probe_run(&s, 4);
    let rate = metric(&m, "messages_dropped_loss") / metric(&m, "messages_sent");
    assert!((0.2..=0.3).contains(&rate), "loss rate {rate}");
}

#[test]
fn an_unsynced_write_is_gone_after_a_crash_and_a_synced_one_survives() {
    let s = probe_scenario(
        2,
        3_000,
        r#"
        [[faults]]
        kind = "crash"
        node = 1
        at_ms = 500
        restart_ms = 1000
        "#,
    );
    let (_, m) = probe_run(&s, 5);
    assert_eq!(
        metric(&m, "boots_1"),
        2.0,
        "the synced boot counter survived"
    );
    assert_eq!(
        metric(&m, "scratch_recovered_1"),
        0.0,
        "the unsynced write is gone"
    );
    assert_eq!(metric(&m, "storage_writes_lost"), 1.0);
}

#[test]
fn a_torn_crash_keeps_a_prefix_of_the_unsynced_tail() {
    let s = |torn: bool| {
        probe_scenario(
            2,
            3_000,
            &format!(
                "[cluster.config]\nscratch_writes = 100\n[[faults]]\nkind = \"crash\"\nnode = 0\n\
                 at_ms = 500\nrestart_ms = 1000\ntorn = {torn}\n"
            ),
        )
    };
    let mut kept_some = 0;
    for seed in 0..10 {
        let (_, m) = probe_run(&s(true), seed);
        let kept = metric(&m, "scratch_recovered_0");
        assert_eq!(
            metric(&m, "scratch_prefix_ok_0"),
            1.0,
            "seed {seed}: what survives is a prefix"
        );
        assert_eq!(kept + metric(&m, "storage_writes_lost"), 100.0);
        kept_some += usize::from(kept > 0.0);
        let (_, clean) = probe_run(&s(false), seed);
        assert_eq!(metric(&clean, "scratch_recovered_0"), 0.0);
    }
    assert!(
        kept_some >= 5,
        "a torn tail keeps part of the writes in most seeds ({kept_some}/10)"
    );
}

#[test]
fn a_paused_process_handles_its_buffered_messages_after_resume() {
    let s = probe_scenario(
        2,
        3_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "pause"
        node = 1
        at_ms = 1000
        resume_ms = 2000
        "#,
    );
    let (_, m) = probe_run(&s, 6);
    // About 100 pings arrived during the second-long pause, all handled at the resume:
    // the 50 sent in its first half waited over 500 ms. None were lost, and node 1
    // sent nothing while paused.
    let late = metric(&m, "late_1");
    assert!((48.0..=51.0).contains(&late), "{late} pings handled late");
    assert_eq!(metric(&m, "late_0"), 0.0);
    assert_eq!(metric(&m, "messages_dropped_node_down"), 0.0);
    assert!(metric(&m, "recv_0_to_1") > metric(&m, "recv_1_to_0") + 80.0);
}

#[test]
fn a_drifting_clock_fires_its_timer_at_the_drifted_time() {
    let s = probe_scenario(
        2,
        3_000,
        r#"
        [cluster.config]
        ping_ms = 0
        tick_ms = 1100
        [[faults]]
        kind = "clock-drift"
        node = 1
        at_ms = 0
        drift_ppm = 100000
        [[faults]]
        kind = "clock-step"
        node = 1
        at_ms = 0
        offset_ms = 5000
        "#,
    );
    let (_, m) = probe_run(&s, 7);
    // Node 1's clock runs 10% fast: 1100 local ms pass in 1000 true ms.
    let fast = metric(&m, "tick_true_ms_1");
    let normal = metric(&m, "tick_true_ms_0");
    assert!(
        (1000.0..1002.0).contains(&fast),
        "drifted tick at {fast} ms"
    );
    assert!(
        (1100.0..1102.0).contains(&normal),
        "normal tick at {normal} ms"
    );
    assert!(
        (6100.0..6102.0).contains(&metric(&m, "tick_local_ms_1")),
        "the step shows on the wall clock"
    );
}

#[test]
fn a_latency_spike_delays_messages_on_the_spiked_node_only() {
    let s = probe_scenario(
        3,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "latency-spike"
        at_ms = 0
        nodes = [2]
        delay = { dist = "constant", ms = 600 }
        "#,
    );
    let (_, m) = probe_run(&s, 8);
    assert!(
        metric(&m, "late_2") > 100.0,
        "pings to node 2 arrive 600 ms late"
    );
    // Node 1 hears node 2 late (that link touches the spiked node) and node 0 on time.
    let (late, from_2, from_0) = (
        metric(&m, "late_1"),
        metric(&m, "recv_2_to_1"),
        metric(&m, "recv_0_to_1"),
    );
    assert!(
        late <= from_2 && late >= 0.9 * from_2,
        "{late} late pings of {from_2} from node 2"
    );
    assert!(
        from_0 > late + 50.0,
        "pings from node 0 ({from_0}) are on time"
    );
}

#[test]
fn a_bridge_node_hears_both_sides_while_the_sides_hear_only_it() {
    let s = probe_scenario(
        3,
        1_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "bridge"
        at_ms = 0
        bridge = 1
        left = [0]
        right = [2]
        "#,
    );
    let (_, m) = probe_run(&s, 9);
    assert_eq!(metric(&m, "recv_0_to_2"), 0.0);
    assert_eq!(metric(&m, "recv_2_to_0"), 0.0);
    assert!(metric(&m, "recv_0_to_1") > 90.0 && metric(&m, "recv_2_to_1") > 90.0);
    assert!(metric(&m, "recv_1_to_0") > 90.0 && metric(&m, "recv_1_to_2") > 90.0);
}

#[test]
fn reordering_delivers_messages_out_of_send_order() {
    // With constant latency and no reordering, late_* stays 0; with reordering some
    // messages are held back up to 900 ms.
    let s = probe_scenario(2, 2_000, "[network]\nlatency = { dist = \"constant\", ms = 1 }\nreorder = 0.2\nreorder_ms_max = 900\n");
    let (_, m) = probe_run(&s, 10);
    assert!(
        metric(&m, "late_1") > 5.0,
        "some messages were held back past later ones"
    );
}

#[test]
fn an_isolated_node_neither_sends_nor_receives_until_healed() {
    let s = probe_scenario(
        3,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "isolate"
        node = 2
        at_ms = 0
        heal_ms = 1000
        "#,
    );
    let (_, m) = probe_run(&s, 11);
    // Pings every 10 ms: only the second half of the run reaches or leaves node 2.
    for (from, to) in [(0, 2), (2, 0), (1, 2), (2, 1)] {
        let received = metric(&m, &format!("recv_{from}_to_{to}"));
        assert!(
            (95.0..=105.0).contains(&received),
            "{from} -> {to}: {received}"
        );
    }
    assert!(metric(&m, "recv_0_to_1") > 190.0);
}

#[test]
fn a_link_latency_override_applies_to_that_direction_only() {
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        links = [{ from = 0, to = 1, latency = { dist = "constant", ms = 700 } }]
        "#,
    );
    let (_, m) = probe_run(&s, 12);
    let (late, received) = (metric(&m, "late_1"), metric(&m, "recv_0_to_1"));
    assert_eq!(late, received, "every ping 0 -> 1 takes 700 ms");
    assert!(received > 100.0);
    assert_eq!(
        metric(&m, "late_0"),
        0.0,
        "1 -> 0 keeps the default latency"
    );
}

#[test]
fn a_node_can_crash_again_the_instant_it_restarts() {
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [[faults]]
        kind = "crash"
        node = 1
        at_ms = 100
        restart_ms = 200
        [[faults]]
        kind = "crash"
        node = 1
        at_ms = 200
        restart_ms = 300
        "#,
    );
    let (summary, m) = probe_run(&s, 13);
    assert_eq!(summary.failed, 0, "{:?}", summary.runs[0].failure);
    assert_eq!(metric(&m, "crashes"), 2.0);
    // The second crash falls before the restart's boot count is synced (0.5 to 2 ms):
    // the third incarnation boots from the first one's count again.
    assert_eq!(metric(&m, "boots_1"), 2.0, "booted, restarted, restarted");
    assert!(metric(&m, "storage_writes_lost") >= 1.0);
}

#[test]
fn a_drift_change_reschedules_a_pending_timer_and_a_jump_does_not() {
    let s = |fault: &str| {
        probe_scenario(
            2,
            3_000,
            &format!(
                "[cluster.config]\nping_ms = 0\ntick_ms = 2000\n[[faults]]\nnode = 1\n\
                 at_ms = 1000\n{fault}\n"
            ),
        )
    };
    // Armed at 0 for 2000 local ms; at 1000 ms the clock turns 10% fast, so the
    // remaining 1000 local ms take 909 true ms.
    let (_, m) = probe_run(&s("kind = \"clock-drift\"\ndrift_ppm = 100000"), 14);
    let fired = metric(&m, "tick_true_ms_1");
    assert!((1909.0..1911.0).contains(&fired), "fired at {fired} ms");
    // A 5 s step moves the wall clock but not the timer.
    let (_, m) = probe_run(&s("kind = \"clock-step\"\noffset_ms = 5000"), 14);
    let fired = metric(&m, "tick_true_ms_1");
    assert!((2000.0..2002.0).contains(&fired), "fired at {fired} ms");
    assert!((7000.0..7002.0).contains(&metric(&m, "tick_local_ms_1")));
}

#[test]
fn two_drift_faults_on_one_node_change_its_rate_without_a_jump() {
    let s = probe_scenario(
        2,
        3_000,
        r#"
        [cluster.config]
        ping_ms = 0
        tick_ms = 2000
        [[faults]]
        kind = "clock-drift"
        node = 1
        at_ms = 0
        drift_ppm = 100000
        [[faults]]
        kind = "clock-drift"
        node = 1
        at_ms = 1000
        drift_ppm = 0
        "#,
    );
    let (_, m) = probe_run(&s, 3);
    // 1100 local ms by 1000 true ms, then 900 more at the true rate.
    let fired = metric(&m, "tick_true_ms_1");
    assert!((1900.0..1902.0).contains(&fired), "fired at {fired} ms");
    let local = metric(&m, "tick_local_ms_1");
    assert!((2000.0..2002.0).contains(&local), "read {local} ms: a jump");
}

#[test]
fn a_frozen_clock_holds_timers_until_the_thaw_then_catches_up() {
    let s = probe_scenario(
        2,
        3_000,
        r#"
        [cluster.config]
        ping_ms = 0
        tick_ms = 1100
        [[faults]]
        kind = "clock-freeze"
        node = 1
        at_ms = 500
        heal_ms = 2000
        "#,
    );
    let (_, m) = probe_run(&s, 4);
    let fired = metric(&m, "tick_true_ms_1");
    assert!((2000.0..2002.0).contains(&fired), "fired at {fired} ms");
    let local = metric(&m, "tick_local_ms_1");
    assert!(
        (2000.0..2002.0).contains(&local),
        "the clock caught up: {local} ms"
    );
    assert!((1100.0..1102.0).contains(&metric(&m, "tick_true_ms_0")));
}

#[test]
fn a_stalled_disk_completes_no_sync_until_the_heal() {
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [cluster.config]
        ping_ms = 10
        [[faults]]
        kind = "disk-stall"
        node = 1
        at_ms = 0
        heal_ms = 800
        "#,
    );
    let (_, m) = probe_run(&s, 5);
    let stalled = metric(&m, "synced_true_ms_1");
    let normal = metric(&m, "synced_true_ms_0");
    assert!((800.0..801.0).contains(&stalled), "synced at {stalled} ms");
    assert!((0.5..=2.0).contains(&normal), "synced at {normal} ms");
    // The network did not stall with the disk.
    assert!(metric(&m, "recv_1_to_0") > 100.0);
}

#[test]
fn an_fsync_error_makes_the_default_process_abort_and_restart() {
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [cluster.config]
        ping_ms = 0
        [disk]
        abort_restart_ms = 300
        [[faults]]
        kind = "fsync-error"
        node = 1
        at_ms = 0
        "#,
    );
    let (summary, m) = probe_run(&s, 6);
    assert_eq!(summary.failed, 0, "{:?}", summary.runs[0].failure);
    assert_eq!(metric(&m, "storage_sync_errors"), 1.0);
    assert_eq!(metric(&m, "aborts"), 1.0);
    // The failed sync covered the first boot count: the restart boots from nothing.
    assert_eq!(metric(&m, "boots_1"), 1.0);
    let synced = metric(&m, "synced_true_ms_1");
    assert!(
        (300.5..305.0).contains(&synced),
        "restarted and synced at {synced} ms"
    );
}

#[test]
fn a_wiped_disk_comes_back_empty_and_a_crash_keeps_what_was_synced() {
    let fault = |kind: &str| {
        probe_scenario(
            2,
            2_000,
            &format!(
                "[cluster.config]\nping_ms = 0\n[[faults]]\nkind = \"{kind}\"\nnode = 1\n\
                 at_ms = 500\nrestart_ms = 600\n"
            ),
        )
    };
    let (_, m) = probe_run(&fault("crash"), 7);
    assert_eq!(
        metric(&m, "boots_1"),
        2.0,
        "a crash keeps the synced boot count"
    );
    let (_, m) = probe_run(&fault("disk-wipe"), 7);
    assert_eq!(metric(&m, "boots_1"), 1.0, "a wipe forgets it");
    assert_eq!(metric(&m, "disk_wipes"), 1.0);
}

#[test]
fn a_per_node_loss_drops_only_messages_to_or_from_that_node() {
    // One flaky NIC: every message to or from node 2 is lost for the first second.
    let s = probe_scenario(
        3,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "loss"
        at_ms = 0
        heal_ms = 1000
        nodes = [2]
        rate = 1.0
        "#,
    );
    let (_, m) = probe_run(&s, 11);
    let (a, b) = (metric(&m, "recv_0_to_1"), metric(&m, "recv_1_to_0"));
    assert!(a > 190.0 && b > 190.0, "0 <-> 1 untouched: {a} {b}");
    for (from, to) in [(0, 2), (2, 0), (1, 2), (2, 1)] {
        let got = metric(&m, &format!("recv_{from}_to_{to}"));
        assert!((90.0..=105.0).contains(&got), "{from} -> {to}: {got}");
        let first = metric(&m, &format!("first_recv_ms_{from}_to_{to}"));
        assert!(first >= 1000.0, "{from} -> {to} heard at {first} ms");
    }
    let dropped = metric(&m, "fault_loss_messages_dropped");
    assert_eq!(dropped, metric(&m, "messages_dropped_loss"));
    assert!((390.0..=410.0).contains(&dropped), "{dropped}");
    assert_eq!(metric(&m, "fault_loss_count"), 1.0);
}

#[test]
fn a_link_loss_cuts_one_direction_of_one_link() {
    let s = probe_scenario(
        3,
        1_000,
        r#"
        [[faults]]
        kind = "loss"
        at_ms = 0
        links = [{ from = 0, to = 1 }]
        rate = 1.0
        "#,
    );
    let (_, m) = probe_run(&s, 12);
    assert_eq!(metric(&m, "recv_0_to_1"), 0.0);
    for (from, to) in [(1, 0), (0, 2), (2, 1)] {
        assert!(metric(&m, &format!("recv_{from}_to_{to}")) > 90.0);
    }
}

#[test]
fn a_class_restricted_loss_drops_only_that_class() {
    // The probe's pings alternate between the classes "odd" and "even".
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "loss"
        at_ms = 0
        rate = 1.0
        classes = ["odd"]
        "#,
    );
    let (_, m) = probe_run(&s, 13);
    let sent = metric(&m, "messages_sent");
    let dropped = metric(&m, "fault_loss_messages_dropped");
    let delivered = metric(&m, "messages_delivered");
    assert!(
        (dropped - delivered).abs() <= 2.0,
        "half of {sent}: {dropped} dropped, {delivered} delivered"
    );
    assert_eq!(dropped + delivered, sent);
    assert_eq!(metric(&m, "out_of_order_1"), 0.0);
}

fn hold_scenario(shuffle: bool) -> faultline::scenario::Scenario {
    probe_scenario(
        2,
        2_500,
        &format!(
            r#"
            [network]
            latency = {{ dist = "constant", ms = 1 }}
            [[faults]]
            kind = "hold"
            at_ms = 500
            heal_ms = 1600
            from = [0]
            to = [1]
            shuffle = {shuffle}
            "#
        ),
    )
}

#[test]
fn held_messages_arrive_at_the_heal_in_send_order() {
    let (_, m) = probe_run(&hold_scenario(false), 14);
    // Pings every 10 ms: about 110 held from 500 to 1600 ms, none lost, all handled
    // at the heal, in the order they were sent. Those sent before 1100 ms waited
    // more than 500 ms; the first waited the whole window.
    let held = metric(&m, "fault_hold_messages_held");
    assert!((105.0..=115.0).contains(&held), "{held} held");
    assert_eq!(metric(&m, "fault_hold_messages_released"), held);
    assert_eq!(metric(&m, "messages_dropped_partition"), 0.0);
    assert_eq!(metric(&m, "out_of_order_1"), 0.0);
    let late = metric(&m, "late_1");
    assert!((55.0..=62.0).contains(&late), "{late} handled late");
    let longest = metric(&m, "delay_max_ms_1");
    assert!((1090.0..=1102.0).contains(&longest), "{longest} ms");
    // The other direction is not held.
    assert_eq!(metric(&m, "late_0"), 0.0);
    assert!(metric(&m, "delay_max_ms_0") < 3.0);
}

#[test]
fn a_shuffled_hold_releases_out_of_send_order() {
    let (_, m) = probe_run(&hold_scenario(true), 14);
    assert!(metric(&m, "out_of_order_1") > 10.0);
    let held = metric(&m, "fault_hold_messages_held");
    assert_eq!(metric(&m, "fault_hold_messages_released"), held);
}

fn slow_scenario(busy: bool, delay_ms: u64) -> faultline::scenario::Scenario {
    probe_scenario(
        2,
        2_000,
        &format!(
            r#"
            [network]
            latency = {{ dist = "constant", ms = 1 }}
            [[faults]]
            kind = "slow"
            at_ms = 0
            node = 1
            delay = {{ dist = "constant", ms = {delay_ms} }}
            busy = {busy}
            "#
        ),
    )
}

#[test]
fn a_slow_node_runs_each_handler_late_while_its_clock_keeps_time() {
    let (_, m) = probe_run(&slow_scenario(false, 50), 15);
    // Node 1 handles every ping 50 ms after it arrived, and reads its own clock then:
    // send-to-handling time as the two clocks measure it is 51 ms (a paused or frozen
    // clock would read about 1 ms).
    let (least, most) = (metric(&m, "delay_min_ms_1"), metric(&m, "delay_max_ms_1"));
    assert!(least >= 50.9 && most <= 52.5, "{least}..{most} ms");
    assert!(metric(&m, "delay_max_ms_0") < 2.5, "node 0 is not slow");
    assert_eq!(metric(&m, "out_of_order_1"), 0.0, "arrival order is kept");
    // Its timers run late too: its 1000 ms tick ran at 1050 ms and read 1050 ms.
    let tick = metric(&m, "tick_true_ms_1");
    assert!((1050.0..1052.0).contains(&tick), "tick at {tick} ms");
    assert!((1050.0..1052.0).contains(&metric(&m, "tick_local_ms_1")));
    // A ping every 10 ms plus a 50 ms late timer: one ping per 60 ms.
    let pings = metric(&m, "recv_1_to_0");
    assert!(
        (30.0..=36.0).contains(&pings),
        "{pings} pings from the slow node"
    );
    let delayed = metric(&m, "fault_slow_handlers_delayed");
    let delay_ms = metric(&m, "fault_slow_handler_delay_ms");
    assert!(delayed > 200.0, "{delayed} handlers delayed");
    assert!(
        (delay_ms / delayed - 50.0).abs() < 0.5,
        "{delay_ms} ms in all"
    );
}

#[test]
fn a_busy_slow_node_falls_behind_when_inputs_outpace_it() {
    // 20 ms of CPU per handler with a ping every 10 ms: the queue only grows.
    let (_, m) = probe_run(&slow_scenario(true, 20), 15);
    let most = metric(&m, "delay_max_ms_1");
    assert!(most > 500.0, "the backlog reached {most} ms");
    assert_eq!(metric(&m, "out_of_order_1"), 0.0);
    // Without `busy` the same delay never accumulates.
    let (_, calm) = probe_run(&slow_scenario(false, 20), 15);
    assert!(metric(&calm, "delay_max_ms_1") < 22.5);
}

#[test]
fn the_same_seed_runs_the_same_with_the_new_faults() {
    let s = probe_scenario(
        4,
        3_000,
        r#"
        [[faults]]
        kind = "hold"
        at_ms = 100
        heal_ms = 900
        from = [0, 1]
        to = [2, 3]
        shuffle = true
        [[faults]]
        kind = "slow"
        at_ms = 200
        heal_ms = 2000
        node = 3
        delay = { dist = "exponential", min_ms = 1, mean_ms = 30 }
        [[faults]]
        kind = "loss"
        at_ms = 300
        heal_ms = 2500
        nodes = [1]
        links = [{ from = 2, to = 0 }]
        rate = 0.3
        classes = ["even"]
        [[faults]]
        kind = "duplicate"
        at_ms = 0
        heal_ms = 2500
        nodes = [0]
        rate = 0.3
        [[faults]]
        kind = "latency-spike"
        at_ms = 0
        links = [{ from = 3, to = 2 }]
        delay = { dist = "uniform", min_ms = 10, max_ms = 100 }
        "#,
    );
    let request = faultline::run::RunRequest {
        seeds: vec![21, 21, 22],
        ..faultline::run::RunRequest::default()
    };
    let summary = faultline::run::run::<common::Probe>(&s, &request).unwrap();
    let hashes: Vec<_> = summary.runs.iter().map(|r| r.trace_hash).collect();
    assert_eq!(hashes[0], hashes[1]);
    assert_ne!(hashes[0], hashes[2]);
}

/// Every fault kind once, each where it has something to act on: every kind reports
/// that it started and what it did.
#[test]
fn every_fault_kind_reports_its_effect() {
    let s = probe_scenario(
        4,
        3_000,
        r#"
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "partition"
        at_ms = 100
        heal_ms = 200
        groups = [[0], [1, 2, 3]]
        [[faults]]
        kind = "one-way"
        at_ms = 100
        heal_ms = 200
        from = [1]
        to = [2]
        [[faults]]
        kind = "bridge"
        at_ms = 300
        heal_ms = 400
        bridge = 3
        left = [0]
        right = [1]
        [[faults]]
        kind = "isolate"
        at_ms = 500
        heal_ms = 600
        node = 2
        [[faults]]
        kind = "disk-slow"
        at_ms = 600
        heal_ms = 1400
        node = 3
        factor = 5
        [[faults]]
        kind = "crash"
        at_ms = 700
        restart_ms = 800
        node = 3
        [[faults]]
        kind = "disk-stall"
        at_ms = 790
        heal_ms = 1300
        node = 3
        [[faults]]
        kind = "pause"
        at_ms = 900
        resume_ms = 1000
        node = 0
        [[faults]]
        kind = "clock-step"
        at_ms = 1000
        node = 1
        offset_ms = -500
        [[faults]]
        kind = "clock-drift"
        at_ms = 1000
        node = 1
        drift_ppm = 1000
        [[faults]]
        kind = "clock-freeze"
        at_ms = 1100
        heal_ms = 1200
        node = 2
        [[faults]]
        kind = "crash"
        at_ms = 1500
        restart_ms = 1600
        node = 1
        [[faults]]
        kind = "fsync-error"
        at_ms = 1550
        node = 1
        [[faults]]
        kind = "disk-wipe"
        at_ms = 2000
        restart_ms = 2100
        node = 2
        [[faults]]
        kind = "latency-spike"
        at_ms = 2200
        heal_ms = 2300
        nodes = [0]
        delay = { dist = "constant", ms = 5 }
        [[faults]]
        kind = "loss"
        at_ms = 2300
        heal_ms = 2400
        nodes = [1]
        rate = 0.5
        [[faults]]
        kind = "duplicate"
        at_ms = 2400
        heal_ms = 2500
        links = [{ from = 0, to = 1 }]
        rate = 1.0
        [[faults]]
        kind = "hold"
        at_ms = 2500
        heal_ms = 2600
        from = [0]
        to = [1]
        [[faults]]
        kind = "slow"
        at_ms = 2600
        heal_ms = 2700
        node = 2
        delay = { dist = "constant", ms = 5 }
        "#,
    );
    let (summary, m) = probe_run(&s, 16);
    assert_eq!(summary.failed, 0);
    let expect: &[(&str, &str, f64)] = &[
        ("partition", "messages_dropped", 60.0),
        ("one-way", "messages_dropped", 5.0),
        ("bridge", "messages_dropped", 15.0),
        ("isolate", "messages_dropped", 50.0),
        ("crash", "nodes_downed", 2.0),
        ("crash", "writes_lost", 2.0),
        ("pause", "nodes_paused", 1.0),
        ("pause", "paused_ms", 100.0),
        ("clock-step", "offset_ms", 500.0),
        ("clock-drift", "timers_rescaled", 1.0),
        ("clock-freeze", "timers_held", 1.0),
        ("clock-freeze", "frozen_ms", 100.0),
        ("disk-stall", "syncs_stalled", 1.0),
        ("disk-slow", "syncs_slowed", 1.0),
        ("fsync-error", "syncs_failed", 1.0),
        ("disk-wipe", "disks_wiped", 1.0),
        ("latency-spike", "messages_delayed", 40.0),
        ("latency-spike", "delay_ms", 200.0),
        ("loss", "messages_dropped", 10.0),
        ("duplicate", "messages_duplicated", 8.0),
        ("hold", "messages_held", 8.0),
        ("hold", "messages_released", 8.0),
        ("slow", "handlers_delayed", 10.0),
    ];
    for &(kind, effect, least) in expect {
        let count = if kind == "crash" { 2.0 } else { 1.0 };
        assert_eq!(metric(&m, &format!("fault_{kind}_count")), count, "{kind}");
        let value = metric(&m, &format!("fault_{kind}_{effect}"));
        assert!(value >= least, "fault_{kind}_{effect} = {value} < {least}");
    }
    // The probe has no clients: client faults are tested in tests/client_faults.rs;
    // nor membership changes: member faults are tested in tests/membership_faults.rs;
    // nor an application: service faults are tested in tests/etcd_discovery.rs.
    for kind in faultline::scenario::FaultKind::ALL {
        let service = faultline::scenario::FaultKind::SERVICE.contains(&kind);
        if !kind.name().starts_with("client-") && !kind.is_membership() && !service {
            assert!(m.contains_key(&format!("fault_{}_count", kind.name())));
        }
    }
}

#[test]
fn a_fault_that_touched_nothing_reports_zero() {
    // No pings: the network faults have nothing to act on.
    let s = probe_scenario(
        3,
        2_000,
        r#"
        [cluster.config]
        ping_ms = 0
        [[faults]]
        kind = "partition"
        at_ms = 100
        groups = [[0]]
        [[faults]]
        kind = "loss"
        at_ms = 100
        rate = 1.0
        [[faults]]
        kind = "hold"
        at_ms = 100
        from = [0]
        to = [1]
        [[faults]]
        kind = "slow"
        at_ms = 1500
        node = 1
        delay = { dist = "constant", ms = 5 }
        "#,
    );
    let (_, m) = probe_run(&s, 17);
    for (kind, effect) in [
        ("partition", "messages_dropped"),
        ("loss", "messages_dropped"),
        ("hold", "messages_held"),
        ("hold", "messages_released"),
        ("slow", "handlers_delayed"),
        ("slow", "handler_delay_ms"),
    ] {
        assert_eq!(metric(&m, &format!("fault_{kind}_count")), 1.0);
        assert_eq!(metric(&m, &format!("fault_{kind}_{effect}")), 0.0, "{kind}");
    }
    assert!(
        !m.contains_key("fault_crash_count"),
        "no crash in the schedule"
    );
}

#[test]
fn the_random_generator_draws_slow_nodes_holds_and_flaky_nics() {
    use faultline::scenario::{Fault, Latency};
    let s = probe_scenario(
        4,
        20_000,
        r#"
        [random]
        kinds = ["slow", "loss", "hold"]
        loss_per_node = 1.0
        slow_delay = { dist = "constant", ms = 7 }
        "#,
    );
    let schedule = s.schedule(3, 0);
    assert_eq!(schedule, s.schedule(3, 0));
    let count = |f: fn(&Fault) -> bool| schedule.faults.iter().filter(|x| f(x)).count();
    assert!(count(|f| matches!(f, Fault::Slow { .. })) > 0);
    assert!(count(|f| matches!(f, Fault::Hold { .. })) > 0);
    assert!(count(|f| matches!(f, Fault::Loss { .. })) > 0);
    for fault in &schedule.faults {
        match &fault.fault {
            Fault::Slow { delay, .. } => assert_eq!(*delay, Latency::Constant { ms: 7.0 }),
            Fault::Loss { nodes, .. } => assert_eq!(nodes.len(), 1, "one flaky NIC"),
            _ => {}
        }
    }
    let (summary, m) = probe_run(&s, 3);
    assert_eq!(summary.failed, 0);
    assert!(metric(&m, "fault_slow_handlers_delayed") > 0.0);
    assert!(metric(&m, "fault_hold_messages_released") > 0.0);
}

#[test]
fn a_timer_cancelled_while_it_waits_for_a_slow_node_never_runs() {
    // Node 1's tick falls due at 1000 ms and waits 50 ms in its queue behind pings
    // that arrived before it; the first of them to run cancels it.
    let s = probe_scenario(
        2,
        2_000,
        r#"
        [cluster.config]
        cancel_due_tick = true
        [network]
        latency = { dist = "constant", ms = 1 }
        [[faults]]
        kind = "slow"
        at_ms = 0
        node = 1
        delay = { dist = "constant", ms = 50 }
        "#,
    );
    let (_, m) = probe_run(&s, 18);
    assert!(
        m.contains_key("tick_true_ms_0"),
        "node 0's tick ran on time"
    );
    assert!(
        !m.contains_key("tick_true_ms_1"),
        "node 1's tick was cancelled"
    );
}

#[test]
fn a_hold_restores_send_order_that_jitter_scrambled() {
    // Jittery latency until 1000 ms scrambles arrival order; everything that arrives
    // before 1500 ms is held, and the release puts it back in send order.
    let body = |hold: bool| {
        let hold = match hold {
            true => {
                "[[faults]]\nkind = \"hold\"\nat_ms = 0\nheal_ms = 1500\nfrom = [0]\nto = [1]\n"
            }
            false => "",
        };
        format!(
            r#"
            [network]
            latency = {{ dist = "constant", ms = 1 }}
            [[faults]]
            kind = "latency-spike"
            at_ms = 0
            heal_ms = 1000
            links = [{{ from = 0, to = 1 }}]
            delay = {{ dist = "uniform", min_ms = 0, max_ms = 200 }}
            {hold}"#
        )
    };
    let (_, scrambled) = probe_run(&probe_scenario(2, 2_000, &body(false)), 19);
    assert!(metric(&scrambled, "out_of_order_1") > 20.0);
    let (_, m) = probe_run(&probe_scenario(2, 2_000, &body(true)), 19);
    assert!(metric(&m, "fault_hold_messages_held") > 140.0);
    assert_eq!(metric(&m, "out_of_order_1"), 0.0);
}

#[test]
fn a_schedule_with_the_new_faults_saves_and_loads_unchanged() {
    let s = probe_scenario(
        4,
        3_000,
        r#"
        [[faults]]
        kind = "loss"
        at_ms = 10
        nodes = [1]
        links = [{ from = 2, to = 3 }]
        classes = ["odd"]
        rate = 0.5
        [[faults]]
        kind = "hold"
        at_ms = 100
        heal_ms = 900
        from = [0]
        to = [1, 2]
        shuffle = true
        classes = ["even", "odd"]
        [[faults]]
        kind = "slow"
        at_ms = 100
        node = 3
        delay = { dist = "exponential", min_ms = 1, mean_ms = 20 }
        busy = true
        timers = false
        [[faults]]
        kind = "duplicate"
        at_ms = 0
        links = [{ from = 0, to = 1 }]
        rate = 0.2
        "#,
    );
    let schedule = s.schedule(1, 0);
    let file = std::env::temp_dir().join(format!(
        "faultline-new-faults-schedule-{}.toml",
        std::process::id()
    ));
    std::fs::write(&file, schedule.to_toml()).unwrap();
    let loaded = faultline::scenario::Schedule::load(&file, &s).unwrap();
    assert_eq!(loaded, schedule);
}

#[test]
fn drift_freeze_and_step_compose_on_one_node() {
    // Node 1 runs 10% fast from 0, is frozen from 500 to 1500 true ms, and its wall
    // clock steps 5 s ahead at 1600. At the thaw its clocks catch up to where the
    // drifted clock would be (1650 local ms) and run on 10% fast; the step moves
    // neither its timer nor its monotonic clock. So the 2000 local ms tick comes
    // (2000 - 1650) / 1.1 = 318 true ms after the thaw.
    let s = probe_scenario(
        2,
        3_000,
        r#"
        [cluster.config]
        ping_ms = 0
        tick_ms = 2000
        [[faults]]
        kind = "clock-drift"
        node = 1
        at_ms = 0
        drift_ppm = 100000
        [[faults]]
        kind = "clock-freeze"
        node = 1
        at_ms = 500
        heal_ms = 1500
        [[faults]]
        kind = "clock-step"
        node = 1
        at_ms = 1600
        offset_ms = 5000
        "#,
    );
    let (_, m) = probe_run(&s, 5);
    let fired = metric(&m, "tick_true_ms_1");
    assert!((1817.0..1820.0).contains(&fired), "fired at {fired} ms");
    // The probe reads its wall clock: the drifted 2000 ms plus the 5 s step.
    let wall = metric(&m, "tick_local_ms_1");
    assert!((7000.0..7002.0).contains(&wall), "read {wall} ms");
    // Node 0 had no clock fault.
    assert!((2000.0..2002.0).contains(&metric(&m, "tick_true_ms_0")));
}

//! The bring-your-own-protocol example runs under faults, and its checker catches a
//! broken protocol.

#[path = "../examples/counter.rs"]
mod counter;

use counter::{Counter, CounterChecker, CounterNode, SCENARIO};
use faultline::check::{Checker, ClusterView};
use faultline::testing::check_seeds;

#[test]
fn the_counter_example_passes_under_faults() {
    let summary = check_seeds::<Counter>(SCENARIO, 0..20);
    assert_eq!(summary.passed, 20);
    assert!(summary.metrics["increments_counted"].min > 100.0);
    assert!(
        summary.metrics["crashes"].max > 0.0,
        "the scenario does crash nodes"
    );
}

#[test]
fn the_counter_checker_rejects_an_invented_count() {
    use faultline::{Context, Process, Storage};
    use rand::SeedableRng;
    // Two started nodes; node 1 then claims node 0 counted 5 when node 0 counted 0.
    let mut nodes: Vec<Option<CounterNode>> = Vec::new();
    for id in 0..2 {
        let setup = faultline::Setup::<Counter> {
            nodes: 2,
            config: Default::default(),
            workload: (),
            bugs: vec![],
            leader_ms: None,
            coverage: false,
        };
        let mut node = <Counter as faultline::System>::process(&setup, id);
        let (mut rng, mut storage, mut next, mut effects) = (
            rand_chacha::ChaCha8Rng::seed_from_u64(1),
            Storage::default(),
            0,
            Vec::new(),
        );
        node.on_start(&mut Context::new(
            id,
            2,
            Default::default(),
            &mut rng,
            &mut storage,
            &mut next,
            &mut effects,
        ));
        nodes.push(Some(node));
    }
    let mut checker = CounterChecker::default();
    let now = std::time::Duration::ZERO;
    assert!(checker
        .after_step(&ClusterView::new(now, &nodes), 0)
        .is_ok());
    let forged = [5, 0].to_vec();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let (mut storage, mut next, mut effects) = (Storage::default(), 0, Vec::new());
    let node1 = nodes[1].as_mut().unwrap();
    node1.on_message(
        &mut Context::new(1, 2, now, &mut rng, &mut storage, &mut next, &mut effects),
        0,
        forged,
    );
    let err = checker
        .after_step(&ClusterView::new(now, &nodes), 1)
        .unwrap_err();
    assert!(err.contains("believes node 0 counted 5"), "{err}");
}

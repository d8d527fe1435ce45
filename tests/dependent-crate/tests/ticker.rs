use ticker::Tickers;

#[test]
fn ticks_survive_crashes() {
    faultline::testing::check_seeds::<Tickers>("ticker-crash", 0..3);
}

#[test]
fn forgetting_the_disk_is_caught() {
    faultline::testing::check_seeds::<Tickers>("ticker-forget", 0..3);
}

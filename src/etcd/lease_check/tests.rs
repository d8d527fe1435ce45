//! The checker's rules on hand-made histories.

use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[test]
fn revoked_a_full_ttl_after_the_last_keepalive_passes() {
    let mut h = LeaseHistory::new();
    h.grant(1, 10_000, s(0));
    h.keepalive(1, s(4));
    h.expired(1, s(14));
    assert_eq!(check(&h, s(0), s(1), s(100)), Vec::new());
}

#[test]
fn revoked_inside_the_ttl_breaks_safety_unless_within_the_drift() {
    let mut h = LeaseHistory::new();
    h.grant(1, 10_000, s(0));
    h.keepalive(1, s(4));
    h.expired(1, s(12));
    let v = check(&h, s(0), s(1), s(100));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].rule, Rule::RevokedWhileAlive);
    assert_eq!(
        (v[0].lease, v[0].acked_at, v[0].revoked_at),
        (1, s(4), Some(s(12)))
    );
    assert_eq!(v[0].deadline, s(14));
    assert!(v[0].to_string().starts_with("revoked-while-alive: lease 1"));
    // Two seconds of drift allowed: 12 is the earliest allowed revocation.
    assert_eq!(check(&h, s(2), s(1), s(100)), Vec::new());
}

#[test]
fn a_lease_never_revoked_or_revoked_late_breaks_liveness() {
    let mut h = LeaseHistory::new();
    h.grant(1, 10_000, s(0));
    h.keepalive(1, s(5));
    h.grant(2, 10_000, s(0));
    h.expired(2, s(13));
    // Lease 1 must go by 5 + 10 + 2 = 17; lease 2 by 12.
    let v = check(&h, s(0), s(2), s(17));
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].rule, v[0].lease, v[0].deadline),
        (Rule::NotRevoked, 2, s(12))
    );
    let v = check(&h, s(0), s(2), s(18));
    assert_eq!(v.len(), 2);
    assert_eq!(
        (v[0].lease, v[0].revoked_at, v[0].deadline),
        (1, None, s(17))
    );
    assert!(v[0].to_string().contains("not revoked by 17s"));
}

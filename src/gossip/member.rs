//! Membership records, updates and the precedence order between them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::process::NodeId;

/// A member's state as one observer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Believed up.
    Alive,
    /// A probe failed; dead once its suspicion times out unless refuted.
    Suspect,
    /// SWIM's Confirm (memberlist's dead): declared failed.
    Dead,
    /// Left gracefully (a dead update sent by the member itself).
    Left,
}

impl MemberState {
    /// Rank within one incarnation: dead/left > suspect > alive (SWIM §4.2).
    pub fn rank(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Dead | MemberState::Left => 2,
        }
    }

    /// Dead or left.
    pub fn is_down(self) -> bool {
        matches!(self, MemberState::Dead | MemberState::Left)
    }
}

/// Discovery metadata a member publishes about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeMeta {
    /// Free-form key-value tags (datacenter, role...).
    pub tags: BTreeMap<String, String>,
    /// The services it offers, by name.
    pub services: Vec<String>,
}

/// One rumour: `from` says `node` is `state` at `incarnation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The member the rumour is about.
    pub node: NodeId,
    /// Its incarnation, as the rumour has it.
    pub incarnation: u64,
    /// Its state, as the rumour has it.
    pub state: MemberState,
    /// Who raised this rumour (the suspecter, for suspicion confirmations).
    pub from: NodeId,
    /// Carried by alive updates so metadata spreads with membership.
    pub meta: Option<Arc<NodeMeta>>,
}

/// The simulator fingerprints every message, and full-state exchanges carry one update
/// per member: encode the fields compactly (17 bytes), and the metadata only by
/// presence (a member's metadata is fixed by the scenario, so its content adds
/// nothing): `incarnation` (u64), `node << 32 | from` (u64; node ids are below 2^32),
/// then one byte: the state's rank, bit 2 set for `Left`, bit 3 set if metadata is
/// carried.
impl crate::fingerprint::Fingerprint for Update {
    fn fingerprint<S: crate::fingerprint::Sink + ?Sized>(&self, out: &mut S) {
        out.write(&self.incarnation.to_le_bytes());
        out.write(&(((self.node as u64) << 32) | self.from as u64).to_le_bytes());
        out.write(&[self.state.rank()
            | u8::from(self.state == MemberState::Left) << 2
            | u8::from(self.meta.is_some()) << 3]);
    }
}

impl Update {
    /// The (incarnation, rank) key: an update is applied only if it is strictly
    /// greater than the record it would replace.
    pub fn order_key(&self) -> (u64, u8) {
        (self.incarnation, self.state.rank())
    }
}

/// What an observer holds about one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its state.
    pub state: MemberState,
    /// The highest incarnation heard of.
    pub incarnation: u64,
    /// Its metadata, once an alive update carried it.
    pub meta: Option<Arc<NodeMeta>>,
    /// Local time of the last state change.
    pub changed_at: Duration,
}

impl Member {
    /// `(incarnation, rank)`: the order in which updates override (see [`overrides`]).
    pub fn order_key(&self) -> (u64, u8) {
        (self.incarnation, self.state.rank())
    }
}

/// Precedence (SWIM §4.2, with memberlist's rule for dead): does `update` override
/// `current`? This is the lexicographic order on (incarnation, rank):
/// - Alive(i) overrides Alive/Suspect(j) iff i > j;
/// - Suspect(i) overrides Suspect(j) iff i > j, Alive(j) iff i ≥ j;
/// - Dead(i) overrides Alive/Suspect(j) iff i ≥ j.
///
/// The paper lets Confirm override any incarnation; faultline, like memberlist,
/// requires i ≥ j, because members restart and rejoin with a higher incarnation and
/// a stale death rumour must not kill the rejoined member.
pub fn overrides(update: &Update, current: Option<&Member>) -> bool {
    match current {
        None => true,
        Some(m) => update.order_key() > m.order_key(),
    }
}

//! The infection-style dissemination buffer (SWIM §4.1, memberlist's
//! TransmitLimitedQueue): at most one pending update per member, least-sent first,
//! newest first among equals, each dropped once sent `limit` times.

use std::collections::BTreeSet;

use super::member::Update;
use crate::process::NodeId;

#[derive(Clone, Debug)]
struct Entry {
    update: Update,
    transmits: u32,
    limit: u32,
    /// Insertion order, for "newest first" among equally sent updates.
    order: u64,
}

/// Membership updates waiting to be piggybacked, at most one per member, least-sent
/// (then newest) first, as memberlist's transmit-limited queue.
#[derive(Clone, Debug)]
pub struct BroadcastQueue {
    /// By member: a newer update about a member replaces the queued one. One slot per
    /// member of the cluster, so the queue never holds more updates than members.
    entries: Vec<Option<Entry>>,
    /// (transmits, reverse insertion order, member): the send order. One key per
    /// occupied slot of `entries`.
    by_sends: BTreeSet<(u32, u64, NodeId)>,
    next_order: u64,
    /// The most times any update has been sent, for the retransmit invariant.
    max_transmits: u32,
}

impl BroadcastQueue {
    /// An empty queue for a cluster of `nodes`.
    pub fn new(nodes: usize) -> Self {
        BroadcastQueue {
            entries: vec![None; nodes],
            by_sends: BTreeSet::new(),
            next_order: 0,
            max_transmits: 0,
        }
    }

    fn key(e: &Entry) -> (u32, u64, NodeId) {
        (e.transmits, u64::MAX - e.order, e.update.node)
    }

    /// Queues `update`, replacing any pending update about the same member.
    pub fn push(&mut self, update: Update, limit: u32) {
        assert!(limit > 0, "a retransmit limit of zero would never send");
        let node = update.node;
        if let Some(old) = self.entries[node].take() {
            let removed = self.by_sends.remove(&Self::key(&old));
            assert!(removed, "queue index out of step with entries");
        }
        self.next_order += 1;
        let e = Entry {
            update,
            transmits: 0,
            limit,
            order: self.next_order,
        };
        self.by_sends.insert(Self::key(&e));
        self.entries[node] = Some(e);
    }

    /// Takes up to `max` updates for one message (skipping one about `skip`, which the
    /// caller sends itself), counting a transmission for each.
    pub fn take(&mut self, max: usize, skip: Option<NodeId>, out: &mut Vec<Update>) {
        let mut picked: Vec<(u32, u64, NodeId)> = Vec::with_capacity(max.min(16));
        // At most one key per member, and the scan stops at `max` picks.
        for &k in self.by_sends.iter() {
            if picked.len() >= max {
                break;
            }
            if Some(k.2) == skip {
                continue;
            }
            picked.push(k);
        }
        for k in picked {
            self.by_sends.remove(&k);
            let slot = &mut self.entries[k.2];
            let e = slot.as_mut().expect("indexed entry exists");
            e.transmits += 1;
            self.max_transmits = self.max_transmits.max(e.transmits);
            assert!(e.transmits <= e.limit, "update sent past its limit");
            out.push(e.update.clone());
            if e.transmits >= e.limit {
                *slot = None;
            } else {
                self.by_sends.insert(Self::key(e));
            }
        }
    }

    /// Updates queued.
    pub fn len(&self) -> usize {
        self.by_sends.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.by_sends.is_empty()
    }

    /// The most times any update has been sent.
    pub fn max_transmits(&self) -> u32 {
        self.max_transmits
    }

    /// The pending update about `node` and how often it has been sent.
    pub fn pending(&self, node: NodeId) -> Option<(&Update, u32)> {
        self.entries[node]
            .as_ref()
            .map(|e| (&e.update, e.transmits))
    }
}

//! What members send each other, and what each message costs on the wire.

use crate::gossip::member::Update;
use crate::process::NodeId;

/// What members send each other (SWIM's ping, ack and ping-req, Lifeguard's nack,
/// memberlist's gossip and push-pull), each carrying membership updates piggybacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwimMessage {
    /// "Are you alive?" `seq` is the sender's probe (or relay) sequence number; acks
    /// echo it.
    Ping {
        /// The probe's sequence number.
        seq: u64,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// "I am": the answer to a ping.
    Ack {
        /// The ping's sequence number.
        seq: u64,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// Lifeguard: a ping-req relay got no ack from the target in time.
    Nack {
        /// The ping-req's sequence number.
        seq: u64,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// "Ping `target` for me": an indirect probe through this member.
    PingReq {
        /// The requester's probe sequence number.
        seq: u64,
        /// The member to ping.
        target: NodeId,
        /// Piggybacked membership updates.
        updates: Vec<Update>,
    },
    /// Updates alone, sent every gossip interval to a few random members.
    Gossip {
        /// Membership updates.
        updates: Vec<Update>,
    },
    /// Full state; the receiver answers with its own when `reply` is set.
    PushPull {
        /// Whether the receiver should answer with its own state.
        reply: bool,
        /// Every member the sender knows of.
        members: Vec<Update>,
    },
}

/// memberlist's transport for `msg`: `probe` and `gossip` over UDP, `push-pull` over
/// TCP.
pub(super) fn class(msg: &SwimMessage) -> &'static str {
    match msg {
        SwimMessage::Ping { .. }
        | SwimMessage::Ack { .. }
        | SwimMessage::Nack { .. }
        | SwimMessage::PingReq { .. } => "probe",
        SwimMessage::Gossip { .. } => "gossip",
        SwimMessage::PushPull { .. } => "push-pull",
    }
}

/// Approximate wire size of a message, in bytes: a 16-byte header, 24 bytes per
/// update and the metadata's strings.
pub(super) fn message_bytes(msg: &SwimMessage) -> usize {
    fn updates_bytes(us: &[Update]) -> usize {
        us.iter()
            .map(|u| {
                24 + u.meta.as_ref().map_or(0, |m| {
                    m.tags
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 2)
                        .sum::<usize>()
                        + m.services.iter().map(|s| s.len() + 1).sum::<usize>()
                })
            })
            .sum()
    }
    let body = match msg {
        SwimMessage::Ping { updates, .. }
        | SwimMessage::Ack { updates, .. }
        | SwimMessage::Nack { updates, .. }
        | SwimMessage::PingReq { updates, .. }
        | SwimMessage::Gossip { updates } => updates_bytes(updates),
        SwimMessage::PushPull { members, .. } => updates_bytes(members),
    };
    16 + body
}

crate::impl_fingerprint!(enum SwimMessage {
    0 => Ping { seq, updates },
    1 => Ack { seq, updates },
    2 => Nack { seq, updates },
    3 => PingReq { seq, target, updates },
    4 => Gossip { updates },
    5 => PushPull { reply, members },
});

//! The space-time diagram's data: every message paired from its `send` to its
//! `deliver` (or `drop`), by the trace's structured fields (`msg`, `peer`, `class`,
//! `req`), and a window of them when a run has too many to draw.

use std::collections::HashMap;

use serde::Serialize;

use super::input::TraceLine;

/// How a message ended, as the page colours it (index into [`KINDS`]).
pub const KINDS: [&str; 5] = ["delivered", "dropped", "duplicate", "undelivered", "held"];
const DELIVERED: u8 = 0;
const DROPPED: u8 = 1;
const DUPLICATE: u8 = 2;
const UNDELIVERED: u8 = 3;
const HELD: u8 = 4;

/// One arrow: `(send_ns, end_ns, from, to, class, kind)`; `from` and `to` index the
/// actors, `class` the classes, `kind` [`KINDS`]. `end_ns` is the delivery or the
/// drop; `None` for a message never delivered nor dropped (it reached a node that
/// was down, or was still in flight when the run ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Arrow(pub u64, pub Option<u64>, pub u32, pub u32, pub u32, pub u8);

/// Every message of a run, in send order.
#[derive(Debug, Default, Serialize)]
pub struct Messages {
    /// Actor names, nodes then clients (`n0`, `n1`, ..., `c0`, ...).
    pub actors: Vec<String>,
    /// Message classes, in order of first use.
    pub classes: Vec<String>,
    /// The arrows, by send time.
    pub arrows: Vec<Arrow>,
    /// Arrows in the run; more than `arrows.len()` when windowed.
    pub total: usize,
    /// When windowed: the simulated time span `[from, to]` (ns) the arrows cover.
    pub window: Option<(u64, u64)>,
}

/// Sorts actor names: nodes by number, then clients by number, then the rest.
pub fn actor_order(name: &str) -> (u8, u64, String) {
    let rank = match name.as_bytes().first() {
        Some(b'n') => 0,
        Some(b'c') => 1,
        _ => 2,
    };
    let number = name
        .get(1..)
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (rank, number, name.to_string())
}

/// Pairs the trace's message events. Events without structured fields (traces
/// written before they existed) are skipped.
pub fn pair(trace: &[TraceLine]) -> Messages {
    let mut actors: Vec<String> = Vec::new();
    for line in trace {
        for name in std::iter::once(&line.actor).chain(&line.peer) {
            if name != "sim" && !actors.contains(name) {
                actors.push(name.clone());
            }
        }
    }
    actors.sort_by_key(|a| actor_order(a));
    let index: HashMap<&str, u32> = actors
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i as u32))
        .collect();
    let mut classes: Vec<String> = Vec::new();
    let mut arrows: Vec<Arrow> = Vec::new();
    // Open messages: node messages by id, client ones by (client, seq, class).
    let mut by_msg: HashMap<u64, usize> = HashMap::new();
    let mut by_req: HashMap<(String, u64, String), usize> = HashMap::new();
    for line in trace {
        let (Some(peer), Some(class)) = (&line.peer, &line.class) else {
            continue;
        };
        let (Some(&me), Some(&other)) = (index.get(line.actor.as_str()), index.get(peer.as_str()))
        else {
            continue;
        };
        let class_ix = match classes.iter().position(|c| c == class) {
            Some(i) => i,
            None => {
                classes.push(class.clone());
                classes.len() - 1
            }
        } as u32;
        // Who sends: the actor on a `send`, a client's `request`, a node's `reply`.
        let sending = match line.event.as_str() {
            "send" => true,
            "request" => line.actor.starts_with('c'),
            "reply" => line.actor.starts_with('n'),
            _ => false,
        };
        let key = match (line.msg, line.req) {
            (Some(m), _) => Key::Msg(m),
            (None, Some(r)) => {
                let client = if line.actor.starts_with('c') {
                    &line.actor
                } else {
                    peer
                };
                Key::Req((client.clone(), r, class.clone()))
            }
            (None, None) => continue,
        };
        if sending {
            arrows.push(Arrow(line.time_ns, None, me, other, class_ix, UNDELIVERED));
            let at = arrows.len() - 1;
            match key {
                Key::Msg(m) => by_msg.insert(m, at),
                Key::Req(k) => by_req.insert(k, at),
            };
            continue;
        }
        let found = match &key {
            Key::Msg(m) => by_msg.get(m),
            Key::Req(k) => by_req.get(k),
        };
        let Some(&at) = found else { continue };
        let arrow = &mut arrows[at];
        match line.event.as_str() {
            "deliver" | "request" | "response" => {
                if arrow.1.is_none() {
                    arrow.1 = Some(line.time_ns);
                    if arrow.5 != HELD {
                        arrow.5 = DELIVERED;
                    }
                } else {
                    // The second delivery of a duplicated message: its own arrow.
                    let copy = Arrow(
                        arrow.0,
                        Some(line.time_ns),
                        arrow.2,
                        arrow.3,
                        arrow.4,
                        DUPLICATE,
                    );
                    arrows.push(copy);
                }
            }
            "drop" if arrow.1.is_none() => {
                arrow.1 = Some(line.time_ns);
                arrow.5 = DROPPED;
            }
            "hold" => arrow.5 = HELD,
            _ => {}
        }
    }
    // Duplicate copies were pushed at their delivery; keep send order.
    arrows.sort_by_key(|a| a.0);
    let total = arrows.len();
    Messages {
        actors,
        classes,
        arrows,
        total,
        window: None,
    }
}

enum Key {
    Msg(u64),
    Req((String, u64, String)),
}

/// Keeps at most `max` arrows: those sent in the span of `max` consecutive sends
/// that ends at `focus_ns` (the failure), or starts at the first send if `focus_ns`
/// comes earlier. Records the window's span when anything is left out.
pub fn window(messages: &mut Messages, max: usize, focus_ns: u64) {
    let n = messages.arrows.len();
    if n <= max {
        return;
    }
    let end = messages
        .arrows
        .partition_point(|a| a.0 <= focus_ns)
        .max(max.min(n));
    let start = end - max;
    messages.arrows.truncate(end);
    messages.arrows.drain(..start);
    let first = messages.arrows.first().map_or(0, |a| a.0);
    let last = messages.arrows.last().map_or(0, |a| a.0);
    messages.window = Some((first, last));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        t: u64,
        actor: &str,
        event: &str,
        msg: Option<u64>,
        req: Option<u64>,
        peer: &str,
        class: &str,
    ) -> TraceLine {
        TraceLine {
            time_ns: t,
            actor: actor.into(),
            event: event.into(),
            detail: String::new(),
            msg,
            peer: Some(peer.into()),
            class: Some(class.into()),
            req,
        }
    }

    #[test]
    fn sends_pair_with_deliveries_drops_and_duplicates() {
        let trace = vec![
            line(10, "n0", "send", Some(0), None, "n1", "vote"),
            line(11, "n0", "send", Some(1), None, "n2", "vote"),
            line(12, "n1", "send", Some(2), None, "n0", "append"),
            line(11, "n0", "drop", Some(1), None, "n2", "vote"),
            line(15, "n1", "deliver", Some(0), None, "n0", "vote"),
            line(17, "n0", "deliver", Some(2), None, "n1", "append"),
            line(19, "n0", "deliver", Some(2), None, "n1", "append"),
        ];
        let m = pair(&trace);
        assert_eq!(m.actors, ["n0", "n1", "n2"]);
        assert_eq!(m.classes, ["vote", "append"]);
        assert_eq!(
            m.arrows,
            [
                Arrow(10, Some(15), 0, 1, 0, DELIVERED),
                Arrow(11, Some(11), 0, 2, 0, DROPPED),
                Arrow(12, Some(17), 1, 0, 1, DELIVERED),
                Arrow(12, Some(19), 1, 0, 1, DUPLICATE),
            ]
        );
    }

    #[test]
    fn client_requests_pair_with_the_node_and_replies_with_the_client() {
        let trace = vec![
            line(1, "c0", "request", None, Some(4), "n2", "request"),
            line(3, "n2", "request", None, Some(4), "c0", "request"),
            line(5, "n2", "reply", None, Some(4), "c0", "reply"),
            line(8, "c0", "response", None, Some(4), "n2", "reply"),
            line(9, "c0", "request", None, Some(5), "n1", "request"),
        ];
        let m = pair(&trace);
        assert_eq!(m.actors, ["n1", "n2", "c0"]);
        assert_eq!(m.arrows[0], Arrow(1, Some(3), 2, 1, 0, DELIVERED));
        assert_eq!(m.arrows[1], Arrow(5, Some(8), 1, 2, 1, DELIVERED));
        assert_eq!(m.arrows[2], Arrow(9, None, 2, 0, 0, UNDELIVERED));
    }

    #[test]
    fn a_held_message_stays_marked_held_when_released() {
        let trace = vec![
            line(1, "n0", "send", Some(0), None, "n1", "append"),
            line(2, "n1", "hold", Some(0), None, "n0", "append"),
            line(9, "n1", "deliver", Some(0), None, "n0", "append"),
        ];
        assert_eq!(pair(&trace).arrows, [Arrow(1, Some(9), 0, 1, 0, HELD)]);
    }

    #[test]
    fn a_window_keeps_the_sends_up_to_the_focus() {
        let trace: Vec<TraceLine> = (0..10)
            .map(|i| line(i * 10, "n0", "send", Some(i), None, "n1", "m"))
            .collect();
        let mut m = pair(&trace);
        window(&mut m, 4, 55);
        assert_eq!(m.total, 10);
        assert_eq!(
            m.arrows.iter().map(|a| a.0).collect::<Vec<_>>(),
            [20, 30, 40, 50]
        );
        assert_eq!(m.window, Some((20, 50)));
        let mut early = pair(&trace);
        window(&mut early, 4, 0);
        assert_eq!(early.window, Some((0, 30)));
        let mut all = pair(&trace);
        window(&mut all, 10, 0);
        assert_eq!((all.arrows.len(), all.window), (10, None));
    }
}

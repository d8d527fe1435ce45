//! The fault lanes and the protocol lane: spans on the simulated time axis, from the
//! schedule and from the trace's fault, crash, pause and protocol-note events.

use serde::Serialize;

use super::input::TraceLine;
use crate::scenario::{Fault, FaultSpec};

/// Most faults drawn as lanes; a longer schedule is cut (and the page says so).
pub const FAULTS_MAX: usize = 300;
/// Most spans in one lane list (leaderships, views): a bound on the page's size.
pub const SPANS_MAX: usize = 50_000;

/// A span on one row: `[start_ns, end_ns)`, `end_ns` `None` when it lasts to the
/// end of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    /// The row it is drawn on (`n3`, a fault's `#4 isolate`, ...).
    pub row: String,
    /// When it starts, ns.
    pub start: u64,
    /// When it ends, ns.
    pub end: Option<u64>,
    /// Colour key: a fault kind, `down`, `paused`, `leader`, a member state.
    pub kind: String,
    /// The text shown on hover.
    pub label: String,
}

/// One fault of the schedule as a span on its own row, `#i kind`, labelled with
/// who it cuts or hits (its fields, e.g. `groups=[[0,1],[2,3,4]]`).
pub fn fault_spans(faults: &[FaultSpec], nodes: usize) -> Vec<Span> {
    faults
        .iter()
        .take(FAULTS_MAX)
        .enumerate()
        .map(|(i, f)| {
            let whom = match (f.target, &f.resolved) {
                (None, _) => who(f),
                (Some(t), Some(ids)) => {
                    let struck: Vec<String> = f.concrete(ids, nodes).iter().map(who).collect();
                    format!("{} = {}", t.name(), struck.join(", "))
                }
                (Some(t), None) => t.name().to_string(),
            };
            let kind = f.kind().name().to_string();
            let fields = serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            let what: Vec<String> = fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "kind" | "at_ms"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Span {
                row: format!("#{i} {kind} {whom}"),
                start: f.at_ms() * 1_000_000,
                end: f.end_ms().map(|e| e * 1_000_000),
                kind,
                label: format!("fault #{i} {} {}", f.kind().name(), what.join(" ")),
            }
        })
        .collect()
}

/// Who a fault hits, briefly: `n0`, `n0 n1 | n2 n3 n4` (a partition's groups),
/// `from n0 to n1`, `bridge n2 left n0 n1 right n3 n4`, `c0`.
pub fn who(f: &Fault) -> String {
    if let Fault::Partition { groups, .. } = f {
        let names = |g: &Vec<usize>| g.iter().map(|n| format!("n{n}")).collect::<Vec<_>>();
        return groups
            .iter()
            .map(|g| names(g).join(" "))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let mut words: Vec<String> = Vec::new();
    let mut last = "";
    for (field, id) in f.node_ids() {
        // Roles that say something (from, to, bridge, left, right, links) are named.
        if field != last && !matches!(field, "node" | "nodes") {
            words.push(field.to_string());
        }
        words.push(format!("n{id}"));
        last = field;
    }
    words.extend(f.client_ids().into_iter().map(|(_, c)| format!("c{c}")));
    words.join(" ")
}

/// Each node's down (crash to restart) and paused (pause to resume) spans, from the
/// trace; a node down at the end stays down.
pub fn node_states(trace: &[TraceLine]) -> Vec<Span> {
    let mut open: Vec<(String, &'static str, u64, String)> = Vec::new();
    let mut spans = Vec::new();
    for line in trace {
        let (state, starts) = match line.event.as_str() {
            "crash" => ("down", true),
            "abort" => ("down", true),
            "restart" | "start" => ("down", false),
            "pause" => ("paused", true),
            "resume" => ("paused", false),
            _ => continue,
        };
        let found = open
            .iter()
            .position(|(a, s, _, _)| *a == line.actor && *s == state);
        match (starts, found) {
            (true, None) => {
                open.push((line.actor.clone(), state, line.time_ns, line.detail.clone()))
            }
            (false, Some(i)) => {
                let (row, kind, start, label) = open.remove(i);
                if spans.len() < SPANS_MAX {
                    spans.push(Span {
                        row,
                        start,
                        end: Some(line.time_ns),
                        kind: kind.into(),
                        label: format!("{kind}: {label}"),
                    });
                }
            }
            _ => {}
        }
    }
    for (row, kind, start, label) in open {
        spans.push(Span {
            row,
            start,
            end: None,
            kind: kind.into(),
            label: format!("{kind} to the end: {label}"),
        });
    }
    spans
}

/// The protocol lane: Raft leaderships (one row per node, a span per term led) or
/// SWIM views (a row per observer and member, a span per state held), from the
/// protocols' trace notes; `kind` names which (`raft`, `gossip`, or `none`).
#[derive(Debug, Serialize)]
pub struct ProtocolLane {
    /// `raft`, `gossip` or `none`.
    pub kind: &'static str,
    /// The spans.
    pub spans: Vec<Span>,
    /// Point events: `(time_ns, row, label)` (Raft campaigns).
    pub marks: Vec<(u64, String, String)>,
}

/// Reads the notes Raft (`node 2 leads term 3`, `node 2 steps down in term 3`,
/// `node 2 lost its quorum in term 3`, `node 2 campaigns in term 4`) and SWIM
/// (`swim: 1 holds 3 Suspect at incarnation 2 (from 4)`) write.
pub fn protocol(trace: &[TraceLine]) -> ProtocolLane {
    let mut lane = ProtocolLane {
        kind: "none",
        spans: Vec::new(),
        marks: Vec::new(),
    };
    // Open leaderships: (node row, term, start).
    let mut leading: Vec<(String, u64, u64)> = Vec::new();
    // Open views: (observer row, member, state, start). A new view of a member closes
    // the observer's open one, so at most one per (observer, member) pair.
    let mut views: Vec<(String, u64, String, u64)> = Vec::new();
    let close = |lane: &mut ProtocolLane,
                 row: String,
                 start: u64,
                 end: Option<u64>,
                 kind: &str,
                 label: String| {
        if lane.spans.len() < SPANS_MAX {
            lane.spans.push(Span {
                row,
                start,
                end,
                kind: kind.into(),
                label,
            });
        }
    };
    for line in trace {
        let t = line.time_ns;
        if line.event == "crash" || line.event == "abort" {
            // A crashed leader leads no more; a crashed member's views are gone.
            if let Some(i) = leading.iter().position(|(r, _, _)| *r == line.actor) {
                let (row, term, start) = leading.remove(i);
                close(
                    &mut lane,
                    row,
                    start,
                    Some(t),
                    "leader",
                    format!("leads term {term} (until its crash)"),
                );
            }
            // Each round removes one view: at most `views.len()` rounds.
            while let Some(i) = views.iter().position(|(r, ..)| *r == line.actor) {
                let (row, member, state, start) = views.remove(i);
                close(
                    &mut lane,
                    format!("{row} sees n{member}"),
                    start,
                    Some(t),
                    &state,
                    format!("{row} holds n{member} {state}"),
                );
            }
            continue;
        }
        if line.event != "note" {
            continue;
        }
        if let Some((node, term)) = raft_note(&line.detail, " leads term ") {
            lane.kind = "raft";
            leading.push((format!("n{node}"), term, t));
        } else if let Some((node, term)) = raft_note(&line.detail, " steps down in term ")
            .or_else(|| raft_note(&line.detail, " lost its quorum in term "))
        {
            let row = format!("n{node}");
            if let Some(i) = leading.iter().position(|(r, _, _)| *r == row) {
                let (row, led, start) = leading.remove(i);
                close(
                    &mut lane,
                    row,
                    start,
                    Some(t),
                    "leader",
                    format!("leads term {led} (steps down in term {term})"),
                );
            }
        } else if let Some((node, term)) = raft_note(&line.detail, " campaigns in term ") {
            lane.kind = "raft";
            if lane.marks.len() < SPANS_MAX {
                lane.marks
                    .push((t, format!("n{node}"), format!("campaigns in term {term}")));
            }
        } else if let Some((observer, member, state)) = swim_note(&line.detail) {
            lane.kind = "gossip";
            let row = format!("n{observer}");
            if let Some(i) = views
                .iter()
                .position(|(r, m, ..)| *r == row && *m == member)
            {
                let (row, member, old, start) = views.remove(i);
                close(
                    &mut lane,
                    format!("{row} sees n{member}"),
                    start,
                    Some(t),
                    &old,
                    format!("{row} holds n{member} {old}"),
                );
            }
            views.push((row, member, state, t));
        }
    }
    for (row, term, start) in leading {
        close(
            &mut lane,
            row,
            start,
            None,
            "leader",
            format!("leads term {term}"),
        );
    }
    for (row, member, state, start) in views {
        close(
            &mut lane,
            format!("{row} sees n{member}"),
            start,
            None,
            &state,
            format!("{row} holds n{member} {state}"),
        );
    }
    lane.spans
        .sort_by(|a, b| (a.start, &a.row).cmp(&(b.start, &b.row)));
    lane
}

/// `node N<middle>T` as `(N, T)`.
fn raft_note(detail: &str, middle: &str) -> Option<(u64, u64)> {
    let rest = detail.strip_prefix("node ")?;
    let (node, term) = rest.split_once(middle)?;
    Some((node.parse().ok()?, term.trim().parse().ok()?))
}

/// `swim: A holds B State at incarnation I (from F)` as `(A, B, State)`.
fn swim_note(detail: &str) -> Option<(u64, u64, String)> {
    let rest = detail.strip_prefix("swim: ")?;
    let mut words = rest.split_whitespace();
    let observer = words.next()?.parse().ok()?;
    if words.next()? != "holds" {
        return None;
    }
    let member = words.next()?.parse().ok()?;
    let state = words.next()?.to_lowercase();
    Some((observer, member, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(t: u64, actor: &str, event: &str, detail: &str) -> TraceLine {
        TraceLine {
            time_ns: t,
            actor: actor.into(),
            event: event.into(),
            detail: detail.into(),
            msg: None,
            peer: None,
            class: None,
            req: None,
        }
    }

    #[test]
    fn raft_leaderships_run_from_leading_to_stepping_down_or_crashing() {
        let trace = vec![
            note(5, "n1", "note", "node 1 campaigns in term 2"),
            note(10, "n1", "note", "node 1 leads term 2"),
            note(50, "n1", "note", "node 1 steps down in term 3"),
            note(60, "n3", "note", "node 3 leads term 3"),
            note(70, "n3", "crash", "0 unsynced writes lost"),
            note(80, "n4", "note", "node 4 leads term 5"),
        ];
        let lane = protocol(&trace);
        assert_eq!(lane.kind, "raft");
        let got: Vec<(&str, u64, Option<u64>)> = lane
            .spans
            .iter()
            .map(|s| (s.row.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [("n1", 10, Some(50)), ("n3", 60, Some(70)), ("n4", 80, None)]
        );
        assert_eq!(
            lane.marks,
            [(5, "n1".to_string(), "campaigns in term 2".to_string())]
        );
    }

    #[test]
    fn swim_views_change_state_per_observer_and_member() {
        let trace = vec![
            note(
                10,
                "n0",
                "note",
                "swim: 0 holds 2 Suspect at incarnation 1 (from 0)",
            ),
            note(
                30,
                "n0",
                "note",
                "swim: 0 holds 2 Alive at incarnation 2 (from 2)",
            ),
            note(
                40,
                "n1",
                "note",
                "swim: 1 holds 2 Dead at incarnation 1 (from 3)",
            ),
        ];
        let lane = protocol(&trace);
        assert_eq!(lane.kind, "gossip");
        let got: Vec<(&str, &str, u64, Option<u64>)> = lane
            .spans
            .iter()
            .map(|s| (s.row.as_str(), s.kind.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [
                ("n0 sees n2", "suspect", 10, Some(30)),
                ("n0 sees n2", "alive", 30, None),
                ("n1 sees n2", "dead", 40, None),
            ]
        );
    }

    #[test]
    fn crashes_and_pauses_become_node_state_spans() {
        let trace = vec![
            note(0, "n0", "start", "incarnation 1"),
            note(10, "n0", "crash", "torn"),
            note(20, "n0", "restart", ""),
            note(30, "n2", "pause", ""),
        ];
        let got: Vec<(String, String, u64, Option<u64>)> = node_states(&trace)
            .into_iter()
            .map(|s| (s.row, s.kind, s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [
                ("n0".into(), "down".into(), 10, Some(20)),
                ("n2".into(), "paused".into(), 30, None)
            ]
        );
    }

    #[test]
    fn who_names_nodes_by_role() {
        let schedule: crate::scenario::Schedule = toml::from_str(
            "seed = 1\n[[faults]]\nkind = \"one-way\"\nat_ms = 1\nfrom = [0]\nto = [1, 2]\n[[faults]]\nkind = \"crash\"\nat_ms = 2\nnode = 3\n",
        )
        .unwrap();
        assert_eq!(who(&schedule.faults[0]), "from n0 to n1 n2");
        assert_eq!(who(&schedule.faults[1]), "n3");
    }

    #[test]
    fn a_fault_span_names_who_it_cuts() {
        let schedule: crate::scenario::Schedule = toml::from_str(
            "seed = 1\n[[faults]]\nkind = \"partition\"\nat_ms = 1000\nheal_ms = 3000\ngroups = [[0, 1], [2, 3, 4]]\n",
        )
        .unwrap();
        let spans = fault_spans(&schedule.faults, 5);
        assert_eq!(spans[0].row, "#0 partition n0 n1 | n2 n3 n4");
        assert_eq!(
            (spans[0].start, spans[0].end),
            (1_000_000_000, Some(3_000_000_000))
        );
        assert!(
            spans[0].label.contains("groups=[[0,1],[2,3,4]]"),
            "{}",
            spans[0].label
        );
    }
}

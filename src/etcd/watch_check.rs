//! A checker of etcd's watch guarantees, written from their documented text
//! (<https://etcd.io/docs/v3.5/learning/api_guarantees/#watch-apis>,
//! <https://etcd.io/docs/v3.5/learning/api/#watch-streams>), independent of any
//! watch implementation: it sees only the committed events and what each watcher
//! received.
//!
//! A watcher's [`Stream`] is one logical watch: a key or range, and one or more
//! [`Segment`]s, the watches it created in turn (the first, then each resume after
//! a break), each with the responses it received in order. The guarantees, as
//! checked here:
//!
//! - **Ordered**: events arrive in revision order; an event never arrives after one
//!   of a later revision.
//! - **Unique**: an event (a revision and a key) never arrives twice.
//! - **Reliable**: no gap. Every committed event of the range, from the stream's
//!   start up to the last event delivered, is delivered: an event arriving while an
//!   earlier one is missing, and never arrives, is a violation, across resumes too
//!   (a resume that starts too late loses events, seen once a later event arrives).
//!   A missing event that arrives later is out of order (Ordered), not lost.
//! - **Atomic**: the events of one revision arrive together, whole, in one response.
//! - **Resumable**: a watch started (or resumed) from a revision inside the history
//!   window is served from exactly that revision: it is not refused as compacted
//!   (etcd refuses only a start below the compaction revision), and it sends no
//!   event below its start.
//! - **Bookmarkable**: a progress notification at revision `r` comes after every
//!   event of the range at or below `r`, and no such event arrives after it.
//!
//! Besides these, every delivered event must be one that was committed, as
//! committed, and inside the watch's range ([`Guarantee::Valid`]).
//!
//! A cancellation for compaction ends the logical stream: the client must read the
//! keys again and start a new watch from a newer revision, so a segment after it
//! starts a fresh stream.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{EtcdStore, Event};

/// The committed events by revision, each revision's events in the order they were
/// applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    revisions: BTreeMap<u64, Vec<Event>>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The log of `events`, each at its `kv.mod_revision`.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Self {
        let mut log = Self::new();
        for e in events {
            log.revisions.entry(e.kv.mod_revision).or_default().push(e);
        }
        log
    }

    /// Adds the revisions of `store` after the log's last one. Call it after every
    /// change that may precede a compaction: events compacted away are not there to
    /// add ([`EtcdStore::events_from`]'s `Compacted` error then panics).
    pub fn record(&mut self, store: &EtcdStore) {
        let from = self.last_revision() + 1;
        if from > store.revision() {
            return;
        }
        let events = store
            .events_from(from)
            .unwrap_or_else(|e| panic!("revisions from {from} are gone: {e:?}"));
        for (rev, e) in events {
            self.revisions.entry(rev).or_default().push(e.clone());
        }
    }

    /// The last revision with events (0: none).
    pub fn last_revision(&self) -> u64 {
        self.revisions.keys().next_back().copied().unwrap_or(0)
    }

    /// The events of revisions `from..to`, in order.
    fn between(&self, from: u64, to: u64) -> impl Iterator<Item = &Event> {
        self.revisions
            .range(from..to.max(from))
            .flat_map(|(_, evs)| evs.iter())
    }
}

/// A watch's range: `key` alone (`range_end` empty), every key from `key` on
/// (`range_end` `"\0"`), or `[key, range_end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The first key.
    pub key: String,
    /// The end.
    pub range_end: String,
}

impl Range {
    fn contains(&self, k: &str) -> bool {
        if self.range_end.is_empty() {
            return k == self.key;
        }
        k >= self.key.as_str() && (self.range_end == "\0" || k < self.range_end.as_str())
    }
}

/// How a segment's watch creation was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Created; the server's revision at creation (what start revision 0 means).
    Created {
        /// The response header revision.
        revision: u64,
    },
    /// Refused: its start is compacted.
    Compacted {
        /// The compaction revision the server gave.
        compact_revision: u64,
    },
}

/// One response a watcher received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Events (an empty list counts for nothing).
    Events(Vec<Event>),
    /// A progress notification at a revision.
    Progress(u64),
    /// Cancelled: compacted at a revision.
    Compacted(u64),
}

/// One watch creation of a stream and what it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The revision asked for (0: from now).
    pub start_revision: u64,
    /// The answer to the creation.
    pub opened: Opened,
    /// The responses, in the order received.
    pub responses: Vec<Received>,
}

/// A watcher's logical watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The watcher, as named in reports.
    pub watcher: u64,
    /// What it watches.
    pub range: Range,
    /// Its creations, in order: the first, then each resume.
    pub segments: Vec<Segment>,
}

/// The guarantee a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Guarantee {
    /// Events by revision.
    Ordered,
    /// No event twice.
    Unique,
    /// No gap.
    Reliable,
    /// Revisions whole, in one response.
    Atomic,
    /// A watch from a revision in the history window is served from it.
    Resumable,
    /// Progress at `r`: every event up to `r` delivered.
    Bookmarkable,
    /// Not one of the six: an event that was not committed as delivered, or outside
    /// the watch's range.
    Valid,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Guarantee::Ordered => "ordered",
            Guarantee::Unique => "unique",
            Guarantee::Reliable => "reliable",
            Guarantee::Atomic => "atomic",
            Guarantee::Resumable => "resumable",
            Guarantee::Bookmarkable => "bookmarkable",
            Guarantee::Valid => "valid",
        };
        f.write_str(name)
    }
}

/// A stream's first violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The guarantee broken.
    pub guarantee: Guarantee,
    /// The watcher.
    pub watcher: u64,
    /// The segment (0: the first creation) and the response (0-based) where it shows.
    pub at: (usize, usize),
    /// The revision concerned.
    pub revision: u64,
    /// The event concerned: the one missing, repeated or misplaced (none for a
    /// refusal).
    pub event: Option<Event>,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "watch {}: watcher {} at revision {} (segment {}, response {}): {}",
            self.guarantee, self.watcher, self.revision, self.at.0, self.at.1, self.detail
        )?;
        if let Some(e) = &self.event {
            write!(f, "; event {:?} {:?}={:?}", e.kind, e.kv.key, e.kv.value)?;
        }
        Ok(())
    }
}

/// The first violation of each stream, in stream order.
pub fn check_all(log: &EventLog, streams: &[Stream]) -> Vec<Violation> {
    streams.iter().filter_map(|s| check(log, s)).collect()
}

/// What the checker knows of a stream as it reads it.
#[derive(Default)]
struct Seen {
    /// The next revision the logical stream needs (`None`: no stream yet).
    next: Option<u64>,
    /// Delivered events: (revision, key).
    delivered: BTreeSet<(u64, String)>,
    /// The last event's revision and the response (a global count) it came in.
    last: Option<(u64, usize)>,
    /// The highest progress revision.
    progress: u64,
}

/// Every event each logical stream of `stream` delivers, as (stream number,
/// revision, key): a cancellation or refusal for compaction starts a new number.
fn eventually(stream: &Stream) -> BTreeSet<(usize, u64, String)> {
    let mut out = BTreeSet::new();
    let mut n = 0;
    for seg in &stream.segments {
        if let Opened::Compacted { .. } = seg.opened {
            n += 1;
            continue;
        }
        for resp in &seg.responses {
            match resp {
                Received::Events(events) => out.extend(
                    events
                        .iter()
                        .map(|e| (n, e.kv.mod_revision, e.kv.key.clone())),
                ),
                Received::Progress(_) => {}
                Received::Compacted(_) => {
                    n += 1;
                    break;
                }
            }
        }
    }
    out
}

/// The first violation of `stream` against `log`, if any.
pub fn check(log: &EventLog, stream: &Stream) -> Option<Violation> {
    // An event that arrives late is out of order, not lost: a gap counts against
    // Reliable only if the missing event never arrives in the same logical stream.
    let eventually = eventually(stream);
    let mut logical = 0;
    let mut seen = Seen::default();
    let mut count = 0;
    let fail = |guarantee, at, revision, event: Option<&Event>, detail: String| {
        Some(Violation {
            guarantee,
            watcher: stream.watcher,
            at,
            revision,
            event: event.cloned(),
            detail,
        })
    };
    let range = &stream.range;
    for (s, seg) in stream.segments.iter().enumerate() {
        let start = match seg.opened {
            Opened::Compacted { compact_revision } => {
                if seg.start_revision != 0 && seg.start_revision >= compact_revision {
                    return fail(
                        Guarantee::Resumable,
                        (s, 0),
                        seg.start_revision,
                        None,
                        format!(
                            "a watch from {} was refused as compacted at {compact_revision}, \
                             though its start is in the history window",
                            seg.start_revision
                        ),
                    );
                }
                seen = Seen::default();
                logical += 1;
                continue;
            }
            Opened::Created { revision } => match seg.start_revision {
                0 => revision + 1,
                r => r,
            },
        };
        seen.next.get_or_insert(start);
        for (r, resp) in seg.responses.iter().enumerate() {
            count += 1;
            let at = (s, r);
            match resp {
                Received::Events(events) => {
                    for (i, e) in events.iter().enumerate() {
                        let rev = e.kv.mod_revision;
                        let key = &e.kv.key;
                        let committed = log
                            .revisions
                            .get(&rev)
                            .is_some_and(|evs| evs.iter().any(|c| c == e));
                        if !committed {
                            let detail = "an event that was never committed as delivered";
                            return fail(Guarantee::Valid, at, rev, Some(e), detail.into());
                        }
                        if !range.contains(key) {
                            let detail = "an event outside the watch's range";
                            return fail(Guarantee::Valid, at, rev, Some(e), detail.into());
                        }
                        let repeat = seen.delivered.contains(&(rev, key.clone()));
                        if repeat {
                            let detail = "an event delivered a second time";
                            return fail(Guarantee::Unique, at, rev, Some(e), detail.into());
                        }
                        if rev < start {
                            let detail = format!("an event below the watch's start {start}");
                            return fail(Guarantee::Resumable, at, rev, Some(e), detail);
                        }
                        if let Some((last, last_count)) = seen.last {
                            if rev < last {
                                let detail = format!("an event after one at revision {last}");
                                return fail(Guarantee::Ordered, at, rev, Some(e), detail);
                            }
                            if rev == last && last_count != count {
                                let detail = "a revision split over two responses";
                                return fail(Guarantee::Atomic, at, rev, Some(e), detail.into());
                            }
                        }
                        if rev <= seen.progress {
                            let detail = format!(
                                "an event after a progress notification at {}",
                                seen.progress
                            );
                            return fail(Guarantee::Bookmarkable, at, rev, Some(e), detail);
                        }
                        let need = seen.next.expect("set at the segment's start");
                        if let Some(missing) = log
                            .between(need, rev)
                            .filter(|m| range.contains(&m.kv.key))
                            .find(|m| {
                                let id = (m.kv.mod_revision, m.kv.key.clone());
                                !seen.delivered.contains(&id)
                                    && !eventually.contains(&(logical, id.0, id.1))
                            })
                        {
                            let detail = format!(
                                "the event at revision {} is missing before one at {rev}",
                                missing.kv.mod_revision
                            );
                            return fail(
                                Guarantee::Reliable,
                                at,
                                missing.kv.mod_revision,
                                Some(missing),
                                detail,
                            );
                        }
                        seen.delivered.insert((rev, key.clone()));
                        seen.last = Some((rev, count));
                        seen.next = Some(need.max(rev + 1));
                        let revision_ends =
                            events.get(i + 1).is_none_or(|n| n.kv.mod_revision != rev);
                        if revision_ends {
                            if let Some(missing) = log.between(rev, rev + 1).find(|m| {
                                range.contains(&m.kv.key)
                                    && !seen.delivered.contains(&(rev, m.kv.key.clone()))
                            }) {
                                let detail = "a response with part of a revision";
                                return fail(
                                    Guarantee::Atomic,
                                    at,
                                    rev,
                                    Some(missing),
                                    detail.into(),
                                );
                            }
                        }
                    }
                }
                Received::Progress(p) => {
                    let need = seen.next.expect("set at the segment's start");
                    if let Some(missing) = log.between(need, p + 1).find(|m| {
                        range.contains(&m.kv.key)
                            && !seen
                                .delivered
                                .contains(&(m.kv.mod_revision, m.kv.key.clone()))
                    }) {
                        let detail = format!(
                            "a progress notification at {p} before the event at revision {}",
                            missing.kv.mod_revision
                        );
                        return fail(
                            Guarantee::Bookmarkable,
                            at,
                            missing.kv.mod_revision,
                            Some(missing),
                            detail,
                        );
                    }
                    seen.next = Some(need.max(p + 1));
                    seen.progress = seen.progress.max(*p);
                }
                Received::Compacted(c) => {
                    let need = seen.next.expect("set at the segment's start");
                    if *c <= need {
                        let detail = format!(
                            "cancelled as compacted at {c}, though it needed revisions from \
                             {need} on, in the history window"
                        );
                        return fail(Guarantee::Resumable, at, need, None, detail);
                    }
                    seen = Seen::default();
                    logical += 1;
                    break;
                }
            }
        }
    }
    None
}

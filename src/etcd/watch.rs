//! etcd's watch, sans-IO: the server side over an [`EtcdStore`] ([`WatchServer`]) and
//! the client side that resumes a broken watch ([`WatchClient`]), after etcd's watch
//! API (<https://etcd.io/docs/v3.5/learning/api/#watch-streams>) and its guarantees
//! (<https://etcd.io/docs/v3.5/learning/api_guarantees/#watch-apis>).
//!
//! - **Create.** A watch names a key or a range (`key`, `range_end`, as
//!   [`EtcdQuery::Range`](super::EtcdQuery::Range)) and a start revision: 0 means
//!   "from now", the events after the store's current revision; otherwise the
//!   events from that revision on, which may lie in the past (replayed from the
//!   store's event log) or in the future (the watch waits).
//! - **Compaction.** A watch that still needs a revision below the store's
//!   compaction point is refused with [`WatchError::Compacted`], carrying the
//!   compaction revision, and cancelled. etcd's rule is strict: a watch may start
//!   *at* the compaction revision; only `minRev < compactRev` is compacted
//!   (`server/storage/mvcc/watcher_group.go`, `chooseAll`; `watchable_store.go`,
//!   `syncWatchers`). The client must then read the keys again and watch from a
//!   newer revision.
//! - **Responses.** [`WatchServer::poll`] sends each watch the events it has not yet
//!   sent, up to the store's current revision, filtered by its range, in revision
//!   order. A response holds whole revisions only: at most `max_revisions` of them,
//!   never part of one (etcd's Atomic guarantee).
//! - **Progress.** [`WatchServer::progress`] answers etcd's `RequestProgress`: a
//!   response with no events carrying the store's revision, sent to each watch
//!   that has been sent every event up to it; a watch still catching up gets none.
//! - **Resume.** [`WatchClient`] tracks the next revision its stream needs (the
//!   last event's revision + 1, or a progress revision + 1) and, after a
//!   disconnect or a leader change, asks for a new watch from it (etcd's
//!   `clientv3` `serveSubstream`, `nextRev`).
//!
//! Everything is deterministic (ordered maps) and pure: the store, the time and the
//! transport belong to the caller.

use std::collections::BTreeMap;

use super::{EtcdStore, Event};

/// A watch's id on its server, assigned in creation order from 1.
pub type WatchId = u64;

/// Faults to inject into the watch (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WatchBugs {
    /// `watch-skip-at-compaction`: a watch that syncs from exactly the compaction
    /// revision misses the events at that revision (cf. etcd #18089, #19179, where
    /// the delete at the compaction revision was lost).
    pub skip_at_compaction: bool,
    /// `watch-resume-off-by-one`: the client resumes a broken watch from the last
    /// revision it saw + 2, not + 1, silently losing the events of the revision in
    /// between. (Resuming from the last revision instead would repeat events, which
    /// a client sees at once; skipping is the dangerous direction.)
    pub resume_off_by_one: bool,
}

/// A request to watch `[key, range_end)` from `start_revision`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchRequest {
    /// The first key.
    pub key: String,
    /// The end of the range: empty for `key` alone, `"\0"` for every key from `key`
    /// on, otherwise exclusive (a prefix `p` is [`prefix_end`]`(p)`).
    pub range_end: String,
    /// The first revision to send (0: the events after the current revision).
    pub start_revision: u64,
}

impl WatchRequest {
    /// Whether the watch covers `key`.
    pub fn matches(&self, key: &str) -> bool {
        match self.range_end.as_str() {
            "" => key == self.key,
            "\0" => key >= self.key.as_str(),
            end => key >= self.key.as_str() && key < end,
        }
    }
}

/// The range end that makes `[prefix, end)` the keys starting with `prefix`
/// (etcd's `clientv3.GetPrefixRangeEnd`): the prefix with its last byte below 0x7f
/// incremented (keys here are strings; etcd's bytes go up to 0xff); `"\0"` (every
/// key) if there is none.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(&last) = bytes.last() {
        if last < 0x7f {
            *bytes.last_mut().expect("non-empty") += 1;
            return String::from_utf8(bytes).expect("ASCII stays ASCII");
        }
        bytes.pop();
    }
    "\0".to_string()
}

/// Why a watch was refused or cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchError {
    /// The watch needs a revision below `compact_revision`, which is compacted
    /// (etcd's `WatchResponse.CompactRevision` with `Canceled`).
    Compacted {
        /// The store's compaction revision.
        compact_revision: u64,
    },
}

/// What a response carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchEvents {
    /// The events of one or more whole revisions, in revision order (never empty).
    Events(Vec<Event>),
    /// A progress notification: every event of the watch up to the response's
    /// `revision` has been sent.
    Progress,
    /// The watch is cancelled: it needed compacted revisions.
    Canceled(WatchError),
}

/// One response on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchResponse {
    /// The watch it belongs to.
    pub watch_id: WatchId,
    /// The store's revision when it was sent (etcd's response header revision).
    pub revision: u64,
    /// Its events, or a notification.
    pub body: WatchEvents,
}

/// A created watch: its id and the store's revision at creation (etcd's `Created`
/// response header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Created {
    /// The watch's id.
    pub watch_id: WatchId,
    /// The store's revision when it was created.
    pub revision: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Watcher {
    request: WatchRequest,
    /// The next revision to send.
    next: u64,
}

/// The server side of etcd's watch on one member: its watches and what each has
/// been sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchServer {
    watchers: BTreeMap<WatchId, Watcher>,
    last_id: WatchId,
    /// Revisions per response, at least 1.
    max_revisions: usize,
    bugs: WatchBugs,
}

impl WatchServer {
    /// A server with no watches, sending at most `max_revisions` revisions (at least
    /// 1) per response.
    pub fn new(max_revisions: usize, bugs: WatchBugs) -> Self {
        WatchServer {
            watchers: BTreeMap::new(),
            last_id: 0,
            max_revisions: max_revisions.max(1),
            bugs,
        }
    }

    /// Creates a watch over `store`; [`WatchError::Compacted`] if its start revision
    /// is below the compaction point (etcd: `startRev < compactRev`).
    pub fn create(
        &mut self,
        store: &EtcdStore,
        request: WatchRequest,
    ) -> Result<Created, WatchError> {
        let next = match request.start_revision {
            0 => store.revision() + 1,
            start if start < store.compacted() => {
                return Err(WatchError::Compacted {
                    compact_revision: store.compacted(),
                });
            }
            start => start,
        };
        self.last_id += 1;
        self.watchers
            .insert(self.last_id, Watcher { request, next });
        Ok(Created {
            watch_id: self.last_id,
            revision: store.revision(),
        })
    }

    /// Cancels watch `id` (a client's cancel, or its stream closing); false if there
    /// is no such watch.
    pub fn cancel(&mut self, id: WatchId) -> bool {
        self.watchers.remove(&id).is_some()
    }

    /// The watches, in id order.
    pub fn watches(&self) -> impl Iterator<Item = (WatchId, &WatchRequest)> {
        self.watchers.iter().map(|(&id, w)| (id, &w.request))
    }

    /// Sends every watch the events it has not yet been sent, up to `store`'s
    /// revision: responses in watch id order, then revision order. A watch that
    /// needs compacted revisions gets one `Canceled` response and is removed.
    pub fn poll(&mut self, store: &EtcdStore) -> Vec<WatchResponse> {
        let mut out = Vec::new();
        let mut canceled = Vec::new();
        for (&id, w) in &mut self.watchers {
            if w.next > store.revision() {
                continue;
            }
            if self.bugs.skip_at_compaction && w.next > 0 && w.next == store.compacted() {
                w.next += 1;
            }
            let events = match store.events_from(w.next) {
                Ok(events) => events,
                Err(_) => {
                    out.push(WatchResponse {
                        watch_id: id,
                        revision: store.revision(),
                        body: WatchEvents::Canceled(WatchError::Compacted {
                            compact_revision: store.compacted(),
                        }),
                    });
                    canceled.push(id);
                    continue;
                }
            };
            let mut batch: Vec<Event> = Vec::new();
            let mut revisions = 0;
            let mut last_rev = 0;
            for (rev, event) in events {
                if !w.request.matches(&event.kv.key) {
                    continue;
                }
                if rev != last_rev {
                    if revisions == self.max_revisions {
                        out.push(WatchResponse {
                            watch_id: id,
                            revision: store.revision(),
                            body: WatchEvents::Events(std::mem::take(&mut batch)),
                        });
                        revisions = 0;
                    }
                    revisions += 1;
                    last_rev = rev;
                }
                batch.push(event.clone());
            }
            if !batch.is_empty() {
                out.push(WatchResponse {
                    watch_id: id,
                    revision: store.revision(),
                    body: WatchEvents::Events(batch),
                });
            }
            w.next = store.revision() + 1;
        }
        for id in canceled {
            self.watchers.remove(&id);
        }
        out
    }

    /// A progress notification at `store`'s revision for each watch that has been
    /// sent every event up to it (call [`poll`](Self::poll) first), in id order.
    pub fn progress(&self, store: &EtcdStore) -> Vec<WatchResponse> {
        self.watchers
            .iter()
            .filter(|(_, w)| w.next > store.revision())
            .map(|(&id, _)| WatchResponse {
                watch_id: id,
                revision: store.revision(),
                body: WatchEvents::Progress,
            })
            .collect()
    }
}

/// A watch's state as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// No watch on a server: [`WatchClient::request`] is what to send.
    Disconnected,
    /// Watching, as this watch on the current server.
    Watching(WatchId),
    /// Cancelled for compaction: the client must read again and start a new watch.
    Compacted {
        /// The compaction revision the server gave.
        compact_revision: u64,
    },
}

/// The client side of one watch: the revision its stream needs next, and the request
/// that resumes it after a disconnect or a leader change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchClient {
    key: String,
    range_end: String,
    /// The next revision the stream needs (0: "from now", before any creation).
    next: u64,
    /// Whether the stream was created once (a later creation is a resume).
    created: bool,
    state: ClientState,
    bugs: WatchBugs,
}

impl WatchClient {
    /// A watch of `[key, range_end)` from `start_revision` (0: from now).
    pub fn new(key: &str, range_end: &str, start_revision: u64, bugs: WatchBugs) -> Self {
        WatchClient {
            key: key.to_string(),
            range_end: range_end.to_string(),
            next: start_revision,
            created: false,
            state: ClientState::Disconnected,
            bugs,
        }
    }

    /// The state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The next revision the stream needs (0 before a "from now" watch is created).
    pub fn next_revision(&self) -> u64 {
        self.next
    }

    /// The request that creates the watch, or resumes it from the next revision it
    /// needs.
    pub fn request(&self) -> WatchRequest {
        let start_revision = match self.created && self.bugs.resume_off_by_one {
            true => self.next + 1,
            false => self.next,
        };
        WatchRequest {
            key: self.key.clone(),
            range_end: self.range_end.clone(),
            start_revision,
        }
    }

    /// The server answered [`request`](Self::request): created, or refused.
    pub fn on_created(&mut self, created: Result<Created, WatchError>) {
        match created {
            Ok(c) => {
                if self.next == 0 {
                    // "From now": the stream covers the revisions after the creation.
                    // (etcd's client resumes such a watch at the header revision
                    // itself, which may replay that revision's events; this one
                    // resumes after it.)
                    self.next = c.revision + 1;
                }
                self.created = true;
                self.state = ClientState::Watching(c.watch_id);
            }
            Err(WatchError::Compacted { compact_revision }) => {
                self.state = ClientState::Compacted { compact_revision }
            }
        }
    }

    /// A response on the current watch: the stream moves past its events, or past a
    /// progress revision.
    pub fn on_response(&mut self, response: &WatchResponse) {
        if self.state != ClientState::Watching(response.watch_id) {
            return;
        }
        match &response.body {
            WatchEvents::Events(events) => {
                if let Some(last) = events.last() {
                    self.next = self.next.max(last.kv.mod_revision + 1);
                }
            }
            WatchEvents::Progress => self.next = self.next.max(response.revision + 1),
            WatchEvents::Canceled(WatchError::Compacted { compact_revision }) => {
                self.state = ClientState::Compacted {
                    compact_revision: *compact_revision,
                }
            }
        }
    }

    /// The stream broke (a disconnect, or the member lost leadership): the next
    /// [`request`](Self::request) resumes it.
    pub fn on_disconnect(&mut self) {
        if let ClientState::Watching(_) = self.state {
            self.state = ClientState::Disconnected;
        }
    }
}

crate::impl_fingerprint!(struct WatchRequest { key, range_end, start_revision });
crate::impl_fingerprint!(struct Created { watch_id, revision });
crate::impl_fingerprint!(enum WatchError { 0 => Compacted { compact_revision } });
crate::impl_fingerprint!(enum WatchEvents {
    0 => Events(events),
    1 => Progress,
    2 => Canceled(error),
});
crate::impl_fingerprint!(struct WatchResponse { watch_id, revision, body });

#[cfg(test)]
mod tests;

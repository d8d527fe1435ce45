//! Client sessions (Raft thesis §6.3): a retried command applies at most once.
//!
//! Each command carries its client's id and a per-client sequence number; the table
//! remembers, per client, the last sequence number applied and its output. It is part
//! of the replicated state (it travels in snapshots), but it is Raft's, not the state
//! machine's, so it works for any command.

use std::collections::BTreeMap;

use super::state_machine::StateMachine;
use crate::process::ClientId;

/// What [`Sessions::apply`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied<O> {
    /// First application of this (client, seq): `output` is what it did.
    Fresh(O),
    /// The same (client, seq) was applied before: nothing changed; this is its output.
    Duplicate(O),
    /// An older seq than the client's last applied one: the client has moved on (it
    /// reported this command as indeterminate), so it is skipped, never applied late.
    Stale,
}

/// Per client: the last applied sequence number and its output. One entry per client,
/// so the table is bounded by the number of clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sessions<O> {
    last: BTreeMap<ClientId, (u64, O)>,
}

impl<O> Default for Sessions<O> {
    fn default() -> Self {
        Sessions {
            last: BTreeMap::new(),
        }
    }
}

impl<O: Clone> Sessions<O> {
    /// Applies `command` to `machine` for `client`'s session `seq` at log `index`, at
    /// most once per (client, seq).
    pub fn apply<S: StateMachine<Output = O>>(
        &mut self,
        machine: &mut S,
        index: u64,
        client: ClientId,
        seq: u64,
        command: &S::Command,
    ) -> Applied<O> {
        assert!(seq > 0, "session sequence numbers start at 1");
        if let Some((last_seq, output)) = self.last.get(&client) {
            if seq == *last_seq {
                return Applied::Duplicate(output.clone());
            }
            if seq < *last_seq {
                return Applied::Stale;
            }
        }
        let output = machine.apply(index, command);
        self.last.insert(client, (seq, output.clone()));
        Applied::Fresh(output)
    }

    /// The last (seq, output) applied for `client`.
    pub fn last(&self, client: ClientId) -> Option<&(u64, O)> {
        self.last.get(&client)
    }

    /// The number of clients with a session.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no client has a session yet.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvCommand, KvResult, KvStore};

    fn put(k: &str, v: &str) -> KvCommand {
        KvCommand::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    fn append(k: &str, v: &str) -> KvCommand {
        KvCommand::Append {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn a_retried_command_applies_once_and_returns_the_first_output() {
        let (mut kv, mut sessions) = (KvStore::default(), Sessions::default());
        let app = append("x", "a");
        let first = sessions.apply(&mut kv, 1, 3, 1, &app);
        assert_eq!(first, Applied::Fresh(KvResult::Done));
        let retry = sessions.apply(&mut kv, 2, 3, 1, &app);
        assert_eq!(retry, Applied::Duplicate(KvResult::Done));
        assert_eq!(kv.get("x").map(String::as_str), Some("a"));
        // Another client's seq 1 is a different command.
        let other = sessions.apply(&mut kv, 3, 4, 1, &app);
        assert_eq!(other, Applied::Fresh(KvResult::Done));
        assert_eq!(kv.get("x").map(String::as_str), Some("aa"));
    }

    #[test]
    fn an_older_seq_arriving_late_is_skipped() {
        let (mut kv, mut sessions) = (KvStore::default(), Sessions::default());
        sessions.apply(&mut kv, 1, 1, 2, &put("x", "new"));
        let late = sessions.apply(&mut kv, 2, 1, 1, &put("x", "old"));
        assert_eq!(late, Applied::Stale);
        assert_eq!(kv.get("x").map(String::as_str), Some("new"));
    }

    #[test]
    fn the_session_table_travels_with_a_copy() {
        let (mut kv, mut sessions) = (KvStore::default(), Sessions::default());
        sessions.apply(&mut kv, 1, 1, 5, &put("x", "1"));
        let (mut kv2, mut sessions2) = (kv.clone(), sessions.clone());
        let retry = sessions2.apply(&mut kv2, 2, 1, 5, &put("x", "2"));
        assert_eq!(retry, Applied::Duplicate(KvResult::Done));
        assert_eq!(kv2.get("x").map(String::as_str), Some("1"));
        assert_eq!(sessions2.last(1), Some(&(5, KvResult::Done)));
    }
}

//! A TTL check's state as a Consul agent saves it on its disk and loads it when it
//! starts again, after `agent/agent.go` (`persistCheckState`, `loadCheckState`,
//! `purgeCheckState`) and consul#3569.
//!
//! Every report of a TTL check writes `{"CheckID", "Status", "Output", "Expires"}`
//! as JSON to `data_dir/checks/state/<id>` (here under the key
//! `checks/state/<id>`), `Expires` being the wall clock plus the TTL, in Unix
//! seconds. Consul writes it without an fsync ("called frequently"), so a machine
//! crash can lose the latest report; an agent restart cannot. A starting agent
//! restores a saved state whose `Expires` is still ahead of the wall clock: the check
//! takes its status and output at once, as if just reported. What happens to the
//! countdown is [`TtlRestore`]'s choice.

use serde::{Deserialize, Serialize};

use super::health::Status;

/// Where a check's state is saved, by check id.
pub fn key(check_id: &str) -> String {
    format!("checks/state/{check_id}")
}

/// The keys' common prefix.
pub const PREFIX: &str = "checks/state/";

/// How a starting agent treats the saved state of its TTL checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TtlRestore {
    /// Consul's behaviour: the saved status comes back and a whole new TTL starts,
    /// so a service that stopped reporting shortly before the restart keeps its
    /// last status for up to two TTLs (consul#3569).
    #[default]
    FullTtl,
    /// The saved status comes back until the saved expiry, as the TTL promised:
    /// what consul#3569 asks for.
    RemainingTtl,
    /// Nothing is saved: every check starts `critical` again, and healthy services
    /// drop out of `?passing` answers until they next report (consul#1001, after an
    /// upgrade of agents with many TTL checks).
    None,
}

/// One saved state, with Consul's field names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct CheckState {
    /// The check's id.
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    #[serde(rename = "Status")]
    pub status: String,
    /// The reported output.
    #[serde(rename = "Output")]
    pub output: String,
    /// Until when the report holds: the wall clock at the report plus the TTL, in
    /// Unix seconds (rounded down, as Go's `Time.Unix`).
    #[serde(rename = "Expires")]
    pub expires_s: u64,
}

impl CheckState {
    /// The state of a report of `status` with `output`, made at wall-clock time
    /// `wall_ms`, by a check whose TTL is `ttl_ms`.
    pub fn new(check_id: &str, status: Status, output: &str, wall_ms: u64, ttl_ms: u64) -> Self {
        CheckState {
            check_id: check_id.to_string(),
            status: status.as_str().to_string(),
            output: output.to_string(),
            expires_s: (wall_ms + ttl_ms) / 1_000,
        }
    }

    /// The file's content.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a check state serializes")
    }

    /// A saved file, if it decodes (Consul drops one that does not).
    pub fn from_json(json: &str) -> Option<CheckState> {
        serde_json::from_str(json).ok()
    }

    /// The saved status, if it names one.
    pub fn status(&self) -> Option<Status> {
        [Status::Passing, Status::Warning, Status::Critical]
            .into_iter()
            .find(|s| s.as_str() == self.status)
    }

    /// How long the saved report still holds at wall-clock time `wall_ms`, in ms;
    /// `None` once it has expired (`time.Now().Unix() >= Expires`).
    pub fn remaining_ms(&self, wall_ms: u64) -> Option<u64> {
        let expires_ms = self.expires_s * 1_000;
        (wall_ms / 1_000 < self.expires_s).then(|| expires_ms.saturating_sub(wall_ms).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_through_consuls_json() {
        let s = CheckState::new("service:api:ttl", Status::Passing, "ok", 12_345, 10_000);
        assert_eq!(
            s.to_json(),
            r#"{"CheckID":"service:api:ttl","Status":"passing","Output":"ok","Expires":22}"#
        );
        assert_eq!(CheckState::from_json(&s.to_json()), Some(s.clone()));
        assert_eq!(s.status(), Some(Status::Passing));
        assert_eq!(CheckState::from_json("{\"CheckID\": 3}"), None);
    }

    #[test]
    fn a_state_holds_until_its_expiry_second() {
        // Reported at 12.345 s with a 10 s TTL: Expires = 22 (s).
        let s = CheckState::new("c", Status::Passing, "", 12_345, 10_000);
        assert_eq!(s.remaining_ms(20_000), Some(2_000));
        assert_eq!(s.remaining_ms(21_999), Some(1));
        assert_eq!(s.remaining_ms(22_000), None);
        assert_eq!(s.remaining_ms(90_000), None);
    }
}

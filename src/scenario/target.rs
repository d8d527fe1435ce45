//! Faults aimed at roles: a fault that names `target = "leader"` (or `followers`,
//! `minority`, `majority`, `one`, `all`) instead of node ids strikes the nodes that
//! hold that role at the moment it starts, as Jepsen's nemesis node specs do
//! (`jepsen.nemesis.combined/db-nodes`: `:primaries`, `:minority`, `:majority`,
//! `:one`, `:all`). The ids it resolved to are recorded (`resolved = [...]`) in the
//! schedule a run writes, and a fault that carries them strikes exactly those nodes,
//! so a replay of that schedule is the same run.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Fault, FaultKind};
use crate::process::{NodeId, Role};

/// Which nodes a role-targeted fault strikes, decided when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Every node whose process reports [`Role::Leader`] (usually one; none between
    /// terms, several while a deposed leader has not heard of its successor).
    Leader,
    /// Every node that does not report [`Role::Leader`].
    Followers,
    /// `(n - 1) / 2` nodes drawn at random (of `n` nodes): 2 of 5.
    Minority,
    /// `n / 2 + 1` nodes drawn at random: 3 of 5.
    Majority,
    /// One node drawn at random.
    One,
    /// Every node.
    All,
}

impl Target {
    /// Every target, in declaration order.
    pub const ALL: [Target; 6] = [
        Target::Leader,
        Target::Followers,
        Target::Minority,
        Target::Majority,
        Target::One,
        Target::All,
    ];

    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            Target::Leader => "leader",
            Target::Followers => "followers",
            Target::Minority => "minority",
            Target::Majority => "majority",
            Target::One => "one",
            Target::All => "all",
        }
    }

    /// How many nodes it resolves to among `n`, when that does not depend on roles.
    pub fn size(self, n: usize) -> Option<usize> {
        match self {
            Target::Minority => Some((n - 1) / 2),
            Target::Majority => Some(n / 2 + 1),
            Target::One => Some(1),
            Target::All => Some(n),
            Target::Leader | Target::Followers => None,
        }
    }

    /// The nodes it names now: `roles[i]` is node `i`'s role (`None` while it is
    /// down); the random targets draw from `rng`. Sorted, without repeats.
    pub fn resolve(self, roles: &[Option<Role>], rng: &mut impl Rng) -> Vec<NodeId> {
        let n = roles.len();
        let leader = |i: &NodeId| roles[*i] == Some(Role::Leader);
        let mut ids: Vec<NodeId> = match self {
            Target::Leader => (0..n).filter(leader).collect(),
            Target::Followers => (0..n).filter(|i| !leader(i)).collect(),
            Target::All => (0..n).collect(),
            Target::Minority | Target::Majority | Target::One => {
                let size = self.size(n).expect("a sized target");
                let mut all: Vec<NodeId> = (0..n).collect();
                all.shuffle(rng);
                all.truncate(size);
                all
            }
        };
        ids.sort_unstable();
        ids
    }
}

impl FaultKind {
    /// Whether a fault of this kind may name a [`Target`] instead of node ids. Not
    /// a bridge (its three parts have no role reading), client pins and member
    /// faults (one node each, checked against the configuration at load).
    pub fn targetable(self) -> bool {
        !matches!(
            self,
            FaultKind::Bridge
                | FaultKind::ClientPause
                | FaultKind::ClientPin
                | FaultKind::MemberAdd
                | FaultKind::MemberRemove
                | FaultKind::MemberReplace
        )
    }
}

/// The fields that name nodes, which a role-targeted fault leaves out.
const NODE_FIELDS: [&str; 5] = ["node", "groups", "from", "to", "nodes"];

/// A fault as a scenario or schedule lists it: what it does, and, when it names a
/// [`Target`] instead of node ids, the target and (once a run resolved it) the ids.
/// Written as the fault's own fields plus `target = "leader"` and, in a run's
/// schedule, `resolved = [2]`; a targeted fault leaves out `node`, `groups`, `from`,
/// `to` and `nodes`, which are placeholders (`0`, empty) in [`FaultSpec::fault`].
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// The fault; for a targeted one, its node fields are placeholders.
    pub fault: Fault,
    /// The role it strikes, if it names one.
    pub target: Option<Target>,
    /// The ids the target resolved to in the run that wrote the schedule: a fault
    /// with them strikes these nodes, whoever holds the role.
    pub resolved: Option<Vec<NodeId>>,
}

impl From<Fault> for FaultSpec {
    fn from(fault: Fault) -> Self {
        FaultSpec {
            fault,
            target: None,
            resolved: None,
        }
    }
}

impl std::ops::Deref for FaultSpec {
    type Target = Fault;
    fn deref(&self) -> &Fault {
        &self.fault
    }
}

impl std::ops::DerefMut for FaultSpec {
    fn deref_mut(&mut self) -> &mut Fault {
        &mut self.fault
    }
}

impl FaultSpec {
    /// `fault` aimed at `target`: its node fields become placeholders.
    pub fn targeted(mut fault: Fault, target: Target) -> FaultSpec {
        fault.clear_nodes();
        FaultSpec {
            fault,
            target: Some(target),
            resolved: None,
        }
    }

    /// The concrete faults it is when it strikes `ids` (the target's resolution, or
    /// [`FaultSpec::resolved`]) among `n` nodes; for an untargeted fault, itself.
    /// Empty when the target names no node, or, for a cut, every node (nothing is
    /// cut off). A fault on one node strikes each node of `ids` in turn; an
    /// `isolate` of several nodes cuts each off from all others.
    pub fn concrete(&self, ids: &[NodeId], n: usize) -> Vec<Fault> {
        if self.target.is_none() {
            return vec![self.fault.clone()];
        }
        let rest: Vec<NodeId> = (0..n).filter(|i| !ids.contains(i)).collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut fault = self.fault.clone();
        match &mut fault {
            Fault::Partition { groups, .. } if !rest.is_empty() => *groups = vec![ids.to_vec()],
            Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } if !rest.is_empty() => {
                *from = ids.to_vec();
                *to = rest;
            }
            Fault::Partition { .. } | Fault::OneWay { .. } | Fault::Hold { .. } => {
                return Vec::new()
            }
            Fault::Isolate {
                at_ms,
                heal_ms,
                permanent,
                classes,
                ..
            } if ids.len() > 1 => {
                return vec![Fault::Partition {
                    at_ms: *at_ms,
                    heal_ms: *heal_ms,
                    permanent: *permanent,
                    groups: ids.iter().map(|&i| vec![i]).collect(),
                    classes: classes.clone(),
                }]
            }
            Fault::LatencySpike { nodes, .. }
            | Fault::Loss { nodes, .. }
            | Fault::Duplicate { nodes, .. }
            | Fault::ClientPartition { nodes, .. } => *nodes = ids.to_vec(),
            _ => {
                return ids
                    .iter()
                    .map(|&id| {
                        let mut one = self.fault.clone();
                        one.set_node(id);
                        one
                    })
                    .collect()
            }
        }
        vec![fault]
    }

    /// Checks the target fields: a targetable kind; `resolved` ids below `n`, sorted
    /// and distinct, at most as many as the target names. `Err` names the field and why.
    pub(crate) fn check_target(&self, n: usize) -> Result<(), (&'static str, String)> {
        let Some(target) = self.target else {
            return match self.resolved {
                Some(_) => Err(("resolved", "only a fault with a `target` has one".into())),
                None => Ok(()),
            };
        };
        let kind = self.kind();
        if !kind.targetable() {
            return Err((
                "target",
                format!(
                    "a `{}` fault cannot name a target; give node ids",
                    kind.name()
                ),
            ));
        }
        if let Some(ids) = &self.resolved {
            if let Some(&bad) = ids.iter().find(|&&i| i >= n) {
                return Err(("resolved", format!("node {bad} does not exist (0..{n})")));
            }
            if ids.windows(2).any(|w| w[0] >= w[1]) {
                return Err(("resolved", "ids must be sorted and distinct".into()));
            }
            // A down fault strikes only the nodes that were up: it may name fewer.
            if let Some(size) = target.size(n).filter(|&s| s < ids.len()) {
                return Err((
                    "resolved",
                    format!(
                        "`{}` names {size} of {n} nodes, not {}",
                        target.name(),
                        ids.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for FaultSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.target.is_none() {
            return self.fault.serialize(serializer);
        }
        let mut table = toml::Table::try_from(&self.fault).map_err(serde::ser::Error::custom)?;
        for field in NODE_FIELDS {
            table.remove(field);
        }
        if let Some(target) = self.target {
            table.insert("target".into(), target.name().into());
        }
        if let Some(ids) = &self.resolved {
            let ids = ids
                .iter()
                .map(|&i| toml::Value::Integer(i as i64))
                .collect();
            table.insert("resolved".into(), toml::Value::Array(ids));
        }
        table.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FaultSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(deserializer)?;
        let target = table
            .remove("target")
            .map(Target::deserialize)
            .transpose()
            .map_err(|e| D::Error::custom(format!("target: {}", e.message())))?;
        let resolved = table
            .remove("resolved")
            .map(Vec::<NodeId>::deserialize)
            .transpose()
            .map_err(|e| D::Error::custom(format!("resolved: {}", e.message())))?;
        if target.is_some() {
            if let Some(field) = NODE_FIELDS.iter().find(|f| table.contains_key(**f)) {
                return Err(D::Error::custom(format!(
                    "a fault with a `target` names no nodes itself: remove `{field}`"
                )));
            }
            let kind = table.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            let known = FaultKind::deserialize(toml::Value::from(kind)).ok();
            if let Some(k) = known.filter(|k| !k.targetable()) {
                return Err(D::Error::custom(format!(
                    "target: a `{}` fault cannot name a target; give node ids",
                    k.name()
                )));
            }
            // Placeholders, so that the fault's own fields parse; `clear_nodes`
            // gives the same ones.
            let fields: &[&str] = match kind {
                "partition" => &["groups"],
                "one-way" | "hold" => &["from", "to"],
                "latency-spike" | "loss" | "duplicate" | "client-partition" => &["nodes"],
                _ => &["node"],
            };
            for &field in fields {
                let value = match field {
                    "node" => toml::Value::Integer(0),
                    _ => toml::Value::Array(Vec::new()),
                };
                table.insert(field.into(), value);
            }
        }
        let fault = Fault::deserialize(toml::Value::Table(table))
            .map_err(|e| D::Error::custom(e.message()))?;
        Ok(FaultSpec {
            fault,
            target,
            resolved,
        })
    }
}

impl Fault {
    /// Sets every node field to its placeholder (`0`, empty): a targeted fault's.
    pub(crate) fn clear_nodes(&mut self) {
        match self {
            Fault::Partition { groups, .. } => groups.clear(),
            Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => {
                from.clear();
                to.clear();
            }
            Fault::LatencySpike { nodes, .. }
            | Fault::Loss { nodes, .. }
            | Fault::Duplicate { nodes, .. }
            | Fault::ClientPartition { nodes, .. } => nodes.clear(),
            _ => self.set_node(0),
        }
    }

    /// Sets the `node` field of a fault on one node (others are unchanged).
    fn set_node(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut() {
            *node = id;
        }
    }
}

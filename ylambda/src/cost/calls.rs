//! What each user action costs in calls, as measured: `shared/tests/aws_cost_model.rs` runs real
//! API Gateway events through the Lambdas' entry point on moto + redis-server and writes
//! `measured-calls.json`; the same test fails when the handler's calls and that file disagree,
//! so the prices `ylambda cost` prints follow the code.
use std::collections::BTreeMap;

use serde::Deserialize;

use super::CostError;

/// `shared/tests/aws_cost_model.rs` writes it (`YLAMBDA_WRITE_COST_CALLS=1`) and checks it.
pub const MEASURED_CALLS: &str = include_str!("measured-calls.json");

/// The actions the cost model uses, by the names the measuring test gives them (two
/// connections in the room).
pub mod action {
    pub const CONNECT: &str = "doc: $connect";
    pub const FIRST_SYNC: &str = "doc: first sync (empty room)";
    pub const JOIN_SYNC: &str = "doc: join sync (2 in room)";
    pub const UPDATE: &str = "doc: update (2 in room)";
    pub const AWARENESS: &str = "doc: awareness change (2 in room)";
    pub const LEAVE: &str = "doc: $disconnect (1 left)";
    pub const LAST_LEAVE: &str = "doc: $disconnect (last: compaction)";
    /// Every action above, in the order the model takes them.
    pub const ALL: [&str; 7] = [
        CONNECT, FIRST_SYNC, JOIN_SYNC, UPDATE, AWARENESS, LEAVE, LAST_LEAVE,
    ];
}

/// Write units of one room-directory transaction: three items at two units each.
const DIRECTORY_TRANSACTION_UNITS: u64 = 6;

/// One action's calls: AWS operations by name, Redis commands in all, posts to connections.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionCalls {
    pub dynamodb: BTreeMap<String, u64>,
    pub s3: BTreeMap<String, u64>,
    pub redis_commands: u64,
    pub posts: u64,
}

impl ActionCalls {
    /// DynamoDB read request units: one per read call (ylambda's items are small).
    pub fn read_units(&self) -> u64 {
        ["GetItem", "Query", "BatchGetItem"]
            .iter()
            .filter_map(|op| self.dynamodb.get(*op))
            .sum()
    }

    /// DynamoDB write request units: one per write call, two per transactional item. The
    /// priced actions' transactions are the room directory's (a membership, its room's activity
    /// and a connection event: three items, six units); pastes over 350 KB also use them, but
    /// are not priced.
    pub fn write_units(&self) -> u64 {
        let one = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"]
            .iter()
            .filter_map(|op| self.dynamodb.get(*op))
            .sum::<u64>();
        one + DIRECTORY_TRANSACTION_UNITS
            * self
                .dynamodb
                .get("TransactWriteItems")
                .copied()
                .unwrap_or(0)
    }

    pub fn s3_gets(&self) -> u64 {
        self.s3.get("GetObject").copied().unwrap_or(0)
    }

    pub fn s3_puts(&self) -> u64 {
        self.s3.get("PutObject").copied().unwrap_or(0)
    }
}

/// The measured calls of one doc-store profile.
pub type ProfileCalls = BTreeMap<String, ActionCalls>;

/// Both profiles' measurements (`redis`: the redis-url and elasticache profiles).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MeasuredCalls {
    pub redis: ProfileCalls,
    pub dynamodb: ProfileCalls,
}

impl MeasuredCalls {
    pub fn builtin() -> Result<Self, CostError> {
        Self::parse(MEASURED_CALLS)
    }

    /// Parses a measurement and checks that it has every action the model needs.
    pub fn parse(text: &str) -> Result<Self, CostError> {
        let calls: MeasuredCalls =
            serde_json::from_str(text).map_err(|e| CostError::Calls(e.to_string()))?;
        for (profile, actions) in [("redis", &calls.redis), ("dynamodb", &calls.dynamodb)] {
            if let Some(missing) = action::ALL.iter().find(|a| !actions.contains_key(**a)) {
                return Err(CostError::Calls(format!(
                    "profile {profile} has no measurement of {missing:?}"
                )));
            }
        }
        Ok(calls)
    }
}

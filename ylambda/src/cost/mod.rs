//! `ylambda cost`: what a workload costs on AWS, from the calls each user action was measured to
//! make (`calls`) and a table of unit prices (`prices`).
//!
//! The model: every user of every room is connected for the whole period, reconnecting each
//! `session_minutes` (API Gateway closes a connection after 2 hours). Each session costs a
//! `$connect`, a sync (the room's first joiner finds it empty), the client's sync step 2 reply
//! (priced as an update, relayed to nobody), its first awareness state and a `$disconnect` (the
//! room's last leaver compacts the log into S3). In between, each user sends `edits_per_sec`
//! document updates and `awareness_per_sec` awareness changes (a cursor that moves with each
//! edit, and y-protocols' 15 s renewal). Posts to connections grow with the room: an update goes
//! to the N - 1 others, an awareness change to all N.
//! Left out: storage (table, bucket, logs), data transfer out, compaction passes within a session
//! (one per MiB of log), Lambda cold starts, and messages over 32 KB (metered as several).
pub mod calls;
pub mod prices;
pub mod report;
#[cfg(test)]
mod tests;

pub use calls::{ActionCalls, MeasuredCalls};
pub use prices::PriceTable;

use calls::{action, ProfileCalls};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CostError {
    #[error("price table {file}: {reason}")]
    Prices { file: String, reason: String },
    #[error("measured calls: {0}")]
    Calls(String),
    #[error("workload: {0}")]
    Workload(String),
}

/// Where the doc store lives (template.yaml's Profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Dynamodb,
    RedisUrl,
    Elasticache,
}

/// y-protocols renews a connected client's awareness state every 15 s (outdatedTimeout / 2).
pub const AWARENESS_RENEWALS_PER_SEC: f64 = 1.0 / 15.0;

/// API Gateway closes a WebSocket connection after 2 hours.
pub const MAX_SESSION_MINUTES: f64 = 120.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub rooms: u64,
    pub users_per_room: u64,
    /// Document updates per user per second.
    pub edits_per_sec: f64,
    /// Awareness changes per user per second.
    pub awareness_per_sec: f64,
    pub hours: f64,
    pub session_minutes: f64,
    pub profile: Profile,
}

impl Workload {
    fn check(&self) -> Result<(), CostError> {
        let bad = |what: String| Err(CostError::Workload(what));
        if self.rooms == 0 || self.users_per_room == 0 {
            return bad("rooms and users per room must be at least 1".into());
        }
        for (name, v) in [
            ("edits per second", self.edits_per_sec),
            ("awareness changes per second", self.awareness_per_sec),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(format!("{name} must be a number >= 0, not {v}"));
            }
        }
        if !self.hours.is_finite() || self.hours <= 0.0 {
            return bad(format!("hours must be a number > 0, not {}", self.hours));
        }
        if !(self.session_minutes > 0.0 && self.session_minutes <= MAX_SESSION_MINUTES) {
            return bad(format!(
                "session minutes must be in (0, {MAX_SESSION_MINUTES}] (API Gateway's connection limit), not {}",
                self.session_minutes
            ));
        }
        Ok(())
    }
}

/// How often each measured action happens in a room over the period, and how many posts each
/// occurrence makes in a room of this size.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub action: &'static str,
    /// What the model calls it.
    pub label: &'static str,
    /// Times per room over the whole period.
    pub per_room: f64,
    /// Posts to connections per occurrence.
    pub posts: f64,
    /// A WebSocket message from the client (`$default`), as opposed to `$connect` / `$disconnect`.
    pub is_message: bool,
}

/// The actions of one room over the period.
pub fn occurrences(w: &Workload, measured: &ProfileCalls) -> Vec<Occurrence> {
    let n = w.users_per_room as f64;
    let secs = w.hours * 3600.0;
    let sessions = (w.hours * 60.0 / w.session_minutes).ceil();
    let posts_of = |a: &str| measured.get(a).map_or(0.0, |c| c.posts as f64);
    let o = |action, label, per_room, posts, is_message| Occurrence {
        action,
        label,
        per_room,
        posts,
        is_message,
    };
    vec![
        o(action::CONNECT, "$connect", n * sessions, 0.0, false),
        o(
            action::FIRST_SYNC,
            "sync, first in the room",
            sessions,
            posts_of(action::FIRST_SYNC),
            true,
        ),
        // Sync step 2 and step 1, then the awareness state of each of the others.
        o(
            action::JOIN_SYNC,
            "sync, joining",
            (n - 1.0) * sessions,
            2.0 + (n - 1.0),
            true,
        ),
        o(action::UPDATE, "sync step 2 reply", n * sessions, 0.0, true),
        o(
            action::UPDATE,
            "document update",
            n * w.edits_per_sec * secs,
            n - 1.0,
            true,
        ),
        o(
            action::AWARENESS,
            "awareness change",
            n * (w.awareness_per_sec * secs + sessions),
            n,
            true,
        ),
        // Its awareness clients' removal, to the others.
        o(
            action::LEAVE,
            "$disconnect",
            (n - 1.0) * sessions,
            n - 1.0,
            false,
        ),
        o(
            action::LAST_LEAVE,
            "$disconnect, last (compaction)",
            sessions,
            0.0,
            false,
        ),
    ]
}

/// One priced line of the breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub service: &'static str,
    pub item: &'static str,
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
}

/// What the workload costs, service by service.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub workload: Workload,
    pub region: String,
    pub lines: Vec<Line>,
}

impl Estimate {
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|l| l.usd).sum()
    }

    pub fn service_total(&self, service: &str) -> f64 {
        self.lines
            .iter()
            .filter(|l| l.service == service)
            .map(|l| l.usd)
            .sum()
    }

    /// Total per user-hour connected.
    pub fn per_user_hour(&self) -> f64 {
        let w = &self.workload;
        self.total() / (w.rooms as f64 * w.users_per_room as f64 * w.hours)
    }
}

/// Totals of calls over the period, all rooms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub messages_in: f64,
    pub posts: f64,
    pub invocations: f64,
    pub connection_minutes: f64,
    pub read_units: f64,
    pub write_units: f64,
    pub s3_gets: f64,
    pub s3_puts: f64,
    pub redis_commands: f64,
}

pub fn usage(w: &Workload, calls: &MeasuredCalls) -> Result<Usage, CostError> {
    w.check()?;
    let measured = match w.profile {
        Profile::Dynamodb => &calls.dynamodb,
        Profile::RedisUrl | Profile::Elasticache => &calls.redis,
    };
    let rooms = w.rooms as f64;
    let mut u = Usage {
        connection_minutes: rooms * w.users_per_room as f64 * w.hours * 60.0,
        ..Usage::default()
    };
    for o in occurrences(w, measured) {
        let c = measured
            .get(o.action)
            .ok_or_else(|| CostError::Calls(format!("no measurement of {:?}", o.action)))?;
        let times = o.per_room * rooms;
        if o.is_message {
            u.messages_in += times;
        }
        u.invocations += times;
        u.posts += times * o.posts;
        u.read_units += times * c.read_units() as f64;
        u.write_units += times * c.write_units() as f64;
        u.s3_gets += times * c.s3_gets() as f64;
        u.s3_puts += times * c.s3_puts() as f64;
        u.redis_commands += times * c.redis_commands as f64;
    }
    Ok(u)
}

/// Prices a workload.
pub fn estimate(
    w: &Workload,
    calls: &MeasuredCalls,
    prices: &PriceTable,
) -> Result<Estimate, CostError> {
    let u = usage(w, calls)?;
    let p = prices;
    let line = |service, item, quantity: f64, unit, usd| Line {
        service,
        item,
        quantity,
        unit,
        usd,
    };
    let messages = u.messages_in + u.posts;
    let gb_seconds =
        u.invocations * p.lambda.ms_per_invocation / 1000.0 * p.lambda.memory_mb / 1024.0;
    let mut lines = vec![
        line(
            "API Gateway",
            "messages (client to server, and posts to connections)",
            messages,
            "messages",
            messages / 1e6 * p.api_gateway.per_million_messages,
        ),
        line(
            "API Gateway",
            "connection minutes",
            u.connection_minutes,
            "minutes",
            u.connection_minutes / 1e6 * p.api_gateway.per_million_connection_minutes,
        ),
        line(
            "Lambda",
            "requests",
            u.invocations,
            "invocations",
            u.invocations / 1e6 * p.lambda.per_million_requests,
        ),
        line(
            "Lambda",
            "duration",
            gb_seconds,
            "GB-seconds",
            gb_seconds * p.lambda.per_gb_second,
        ),
        line(
            "DynamoDB",
            "read request units",
            u.read_units,
            "RRU",
            u.read_units / 1e6 * p.dynamodb.per_million_read_units,
        ),
        line(
            "DynamoDB",
            "write request units",
            u.write_units,
            "WRU",
            u.write_units / 1e6 * p.dynamodb.per_million_write_units,
        ),
        line(
            "S3",
            "GET (snapshot reads)",
            u.s3_gets,
            "requests",
            u.s3_gets / 1e3 * p.s3.per_thousand_get,
        ),
        line(
            "S3",
            "PUT (snapshot writes)",
            u.s3_puts,
            "requests",
            u.s3_puts / 1e3 * p.s3.per_thousand_put,
        ),
    ];
    match w.profile {
        Profile::Dynamodb => {}
        Profile::RedisUrl => lines.push(line(
            "Redis (yours)",
            "hours",
            w.hours,
            "hours",
            w.hours * p.redis_url.per_hour,
        )),
        Profile::Elasticache => {
            let e = &p.elasticache;
            let nat_gb = u.posts * e.nat_bytes_per_post / 1e9;
            let gb_hours = e.cache_min_gb * w.hours;
            lines.extend([
                line(
                    "ElastiCache",
                    "data stored (the 100 MB minimum)",
                    gb_hours,
                    "GB-hours",
                    gb_hours * e.cache_per_gb_hour,
                ),
                line(
                    "ElastiCache",
                    "ECPUs (one per Redis command)",
                    u.redis_commands,
                    "ECPUs",
                    u.redis_commands / 1e6 * e.per_million_ecpus,
                ),
                line(
                    "VPC",
                    "NAT gateway and its public IPv4",
                    w.hours,
                    "hours",
                    w.hours * (e.nat_gateway_per_hour + e.public_ipv4_per_hour),
                ),
                line(
                    "VPC",
                    "NAT data (posts to connections)",
                    nat_gb,
                    "GB",
                    nat_gb * e.nat_per_gb,
                ),
            ]);
        }
    }
    Ok(Estimate {
        workload: w.clone(),
        region: p.region.clone(),
        lines,
    })
}

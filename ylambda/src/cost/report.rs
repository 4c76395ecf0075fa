//! `ylambda cost`'s printout: the workload, then one Markdown table row per priced item.
use std::fmt::Write;

use super::{Estimate, Profile};

/// Dollars with enough digits to tell small lines apart.
pub fn usd(v: f64) -> String {
    if v >= 100.0 {
        format!("${v:.0}")
    } else if v >= 0.01 || v == 0.0 {
        format!("${v:.2}")
    } else {
        // Two significant digits: $0.0088, $0.0000088.
        let decimals = (1.0 - v.log10().floor()).clamp(2.0, 12.0) as usize;
        format!("${v:.decimals$}")
    }
}

/// Quantities with thousands separators (what a bill shows).
pub fn quantity(v: f64) -> String {
    if v.fract().abs() > 1e-9 && v < 1000.0 {
        return format!("{v:.3}");
    }
    let digits = format!("{:.0}", v.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate as typed: at most three decimals, no trailing zeros.
fn rate(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn render(e: &Estimate) -> String {
    let w = &e.workload;
    let profile = match w.profile {
        Profile::Dynamodb => "dynamodb",
        Profile::RedisUrl => "redis-url",
        Profile::Elasticache => "elasticache",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} rooms x {} users, {} edits/s and {} awareness changes/s per user, {} h \
         (sessions of {} min), profile {profile}, prices {}:\n",
        w.rooms,
        w.users_per_room,
        rate(w.edits_per_sec),
        rate(w.awareness_per_sec),
        w.hours,
        w.session_minutes,
        e.region
    );
    let _ = writeln!(out, "| service | item | quantity | cost |");
    let _ = writeln!(out, "| --- | --- | ---: | ---: |");
    let mut last_service = "";
    for l in &e.lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} {} | {} |",
            if l.service == last_service {
                ""
            } else {
                l.service
            },
            l.item,
            quantity(l.quantity),
            l.unit,
            usd(l.usd)
        );
        last_service = l.service;
    }
    let _ = writeln!(out, "| **total** | | | **{}** |", usd(e.total()));
    let mut services: Vec<&str> = e.lines.iter().map(|l| l.service).collect();
    services.dedup();
    let parts: Vec<String> = services
        .iter()
        .map(|s| format!("{s} {}", usd(e.service_total(s))))
        .collect();
    let _ = writeln!(
        out,
        "\nBy service: {}. Per user-hour connected: {}.",
        parts.join(", "),
        usd(e.per_user_hour())
    );
    out
}

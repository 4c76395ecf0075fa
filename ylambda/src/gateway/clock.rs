//! Wall-clock formatting in the shapes API Gateway uses, without pulling in a date crate for
//! three formatters.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Milliseconds since the Unix epoch (`connectedAt`, `requestTimeEpoch`).
pub fn epoch_ms(t: SystemTime) -> i64 {
    since_epoch(t).as_millis().try_into().unwrap_or(i64::MAX)
}

/// `2024-02-09T18:23:28.941Z`, as the management API's `GetConnection` answers.
pub fn iso8601(t: SystemTime) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// `09/Feb/2024:18:23:28 +0000`, the `requestTime` of a WebSocket event.
pub fn request_time(t: SystemTime) -> String {
    let c = Civil::of(t);
    let month = MONTHS[(c.month as usize).saturating_sub(1).min(11)];
    format!(
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

fn since_epoch(t: SystemTime) -> Duration {
    // A clock before 1970 is a broken clock; report the epoch rather than fail a request on it.
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

impl Civil {
    fn of(t: SystemTime) -> Civil {
        let d = since_epoch(t);
        let secs = d.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millis: d.subsec_millis(),
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn formats_match_api_gateway_fixtures() {
        // From aws_lambda_events' example-apigw-websocket-request-disconnect-route.json.
        let t = at(1_707_503_008_941);
        assert_eq!(request_time(t), "09/Feb/2024:18:23:28 +0000");
        assert_eq!(iso8601(t), "2024-02-09T18:23:28.941Z");
        assert_eq!(epoch_ms(t), 1_707_503_008_941);
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(iso8601(at(0)), "1970-01-01T00:00:00.000Z");
        // Leap day and the last millisecond of a leap year.
        assert_eq!(iso8601(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(at(1_735_689_599_999)), "2024-12-31T23:59:59.999Z");
        assert_eq!(
            request_time(at(1_546_852_857_000)),
            "07/Jan/2019:09:20:57 +0000"
        );
    }
}

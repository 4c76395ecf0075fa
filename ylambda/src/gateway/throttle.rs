//! API Gateway's stage and route throttling, emulated: a token bucket per route for the whole
//! API (not per client: API Gateway's WebSocket throttling is shared by every connection of a
//! stage, which is why the handler keeps its own per-connection message limit too).
//!
//! What a throttled client meets, as on AWS: a `$connect` over the limit is answered `429 Too
//! Many Requests`; a message over it is not routed (no Lambda runs) and the client gets the text
//! frame `{"message": "Too Many Requests", "connectionId": ..., "requestId": ...}` while the
//! connection stays open.
use std::sync::Mutex;
use std::time::Instant;

use ylambda_shared::config::Throttle;

/// One route's bucket: `rate` tokens a second, at most `burst` saved up.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        let (tokens, last) = *state;
        let refilled = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        if refilled >= 1.0 {
            *state = (refilled - 1.0, now);
            true
        } else {
            *state = (refilled, now);
            false
        }
    }
}

/// The buckets of the routes clients invoke: `$connect` and messages (`$default`).
pub struct RouteThrottles {
    pub connect: TokenBucket,
    pub message: TokenBucket,
}

impl RouteThrottles {
    pub fn new(throttle: &Throttle) -> RouteThrottles {
        RouteThrottles {
            connect: TokenBucket::new(throttle.connect_rate, throttle.connect_burst),
            message: TokenBucket::new(throttle.message_rate, throttle.message_burst),
        }
    }
}

/// The frame a throttled message earns.
pub fn too_many_requests(connection_id: &str, request_id: &str) -> String {
    serde_json::json!({
        "message": "Too Many Requests",
        "connectionId": connection_id,
        "requestId": request_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_passes_its_burst_then_its_rate() {
        let bucket = TokenBucket::new(10, 3);
        let start = Instant::now();
        let passed = (0..5).filter(|_| bucket.try_take_at(start)).count();
        assert_eq!(passed, 3, "the burst");
        assert!(!bucket.try_take_at(start + Duration::from_millis(50)));
        assert!(
            bucket.try_take_at(start + Duration::from_millis(110)),
            "refilled at 10/s"
        );
        // Saved-up tokens never exceed the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take_at(later)).count(), 3);
    }

    #[test]
    fn the_throttled_frame_says_who_and_which_request() {
        let frame: serde_json::Value =
            serde_json::from_str(&too_many_requests("c1", "r1")).unwrap();
        assert_eq!(frame["message"], "Too Many Requests");
        assert_eq!(frame["connectionId"], "c1");
        assert_eq!(frame["requestId"], "r1");
    }
}

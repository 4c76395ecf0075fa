//! Builds the API Gateway WebSocket events (`$connect`, `$default`, `$disconnect`) the way AWS
//! fills them (compare aws_lambda_events' `example-apigw-websocket-request*.json` fixtures), so the
//! handler's Lambda event mapping runs locally exactly as it does on AWS.
use std::collections::HashMap;
use std::time::SystemTime;

use aws_lambda_events::apigw::{
    ApiGatewayWebsocketProxyRequest, ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue};
use aws_lambda_events::query_map::QueryMap;

use super::clock;
use super::connections::ConnectionMeta;
use super::ids;

/// The request context every route shares.
fn context(
    meta: &ConnectionMeta,
    route_key: &str,
    event_type: &str,
) -> ApiGatewayWebsocketProxyRequestContext {
    let now = SystemTime::now();
    let request_id = ids::request_id();
    // The struct is #[non_exhaustive]: start from Default and fill what AWS fills.
    let mut c = ApiGatewayWebsocketProxyRequestContext::default();
    c.route_key = Some(route_key.to_string());
    c.event_type = Some(event_type.to_string());
    c.message_direction = Some("IN".to_string());
    c.connection_id = Some(meta.connection_id.clone());
    c.domain_name = Some(meta.domain_name.clone());
    c.stage = Some(meta.stage.clone());
    c.apiid = Some(meta.api_id.clone());
    c.extended_request_id = Some(request_id.clone());
    c.request_id = Some(request_id);
    c.request_time = Some(clock::request_time(now));
    c.request_time_epoch = clock::epoch_ms(now);
    c.connected_at = clock::epoch_ms(meta.connected_at);
    c.identity.source_ip = Some(meta.source_ip.clone());
    c.identity.user_agent = meta.user_agent.clone();
    c
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Parses a raw query string the way API Gateway presents it: `queryStringParameters` holds the
/// last value of each name, `multiValueQueryStringParameters` all of them, both URL-decoded.
pub fn query_parameters(raw: Option<&str>) -> (QueryMap, QueryMap) {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return (QueryMap::default(), QueryMap::default());
    };
    // form_urlencoded parsing never fails; it decodes %XX and '+' and keeps repeated names.
    let all: QueryMap = raw.parse().unwrap_or_default();
    let mut single = HashMap::new();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in all.iter() {
        multi
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    for (name, values) in &multi {
        if let Some(last) = values.last() {
            single.insert(name.clone(), last.clone());
        }
    }
    (QueryMap::from(single), QueryMap::from(multi))
}

/// `$connect`: the upgrade request's headers (plus the `X-Forwarded-*` ones API Gateway adds) and
/// query string.
pub fn connect(
    meta: &ConnectionMeta,
    request_headers: &HeaderMap,
    raw_query: Option<&str>,
    local_port: u16,
) -> ApiGatewayWebsocketProxyRequest {
    let mut headers = request_headers.clone();
    set_header(&mut headers, "x-forwarded-for", &meta.source_ip);
    set_header(&mut headers, "x-forwarded-port", &local_port.to_string());
    // The dev server speaks plain ws://; say so rather than pretend to be TLS.
    set_header(&mut headers, "x-forwarded-proto", "http");
    let (single, multi) = query_parameters(raw_query);

    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context = context(meta, "$connect", "CONNECT");
    event.multi_value_headers = headers.clone();
    event.headers = headers;
    event.query_string_parameters = single;
    event.multi_value_query_string_parameters = multi;
    event.is_base64_encoded = false;
    event
}

/// `$default`: one text frame. Real `$default` events carry no headers or query string.
pub fn message(meta: &ConnectionMeta, body: String) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context = context(meta, "$default", "MESSAGE");
    event.request_context.message_id = Some(ids::request_id());
    event.body = Some(body);
    event.is_base64_encoded = false;
    event
}

/// `$disconnect`, with the close code and reason as API Gateway reports them.
pub fn disconnect(
    meta: &ConnectionMeta,
    code: u16,
    reason: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut headers = HeaderMap::new();
    set_header(&mut headers, "host", &meta.domain_name);
    set_header(&mut headers, "x-forwarded-for", &meta.source_ip);
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context = context(meta, "$disconnect", "DISCONNECT");
    event.request_context.disconnect_status_code = Some(i64::from(code));
    event.request_context.disconnect_reason = Some(reason.to_string());
    event.multi_value_headers = headers.clone();
    event.headers = headers;
    event.is_base64_encoded = false;
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ConnectionMeta {
        ConnectionMeta {
            connection_id: "TWegAcC4EowCHnA=".into(),
            api_id: "gy415nuibc".into(),
            stage: "dev".into(),
            domain_name: "127.0.0.1:4001".into(),
            source_ip: "10.0.0.13".into(),
            user_agent: Some("test-agent".into()),
            room: Some("my room".into()),
            connected_at: SystemTime::now(),
        }
    }

    #[test]
    fn connect_event_is_shaped_like_aws() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:4001"));
        let e = connect(&meta(), &h, Some("room=my%20room&doc=a&doc=b&x=1+2"), 4001);
        let c = &e.request_context;
        assert_eq!(c.route_key.as_deref(), Some("$connect"));
        assert_eq!(c.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(c.message_direction.as_deref(), Some("IN"));
        assert_eq!(c.connection_id.as_deref(), Some("TWegAcC4EowCHnA="));
        assert_eq!(c.stage.as_deref(), Some("dev"));
        assert_eq!(c.identity.source_ip.as_deref(), Some("10.0.0.13"));
        assert!(c.request_time_epoch >= c.connected_at);
        assert_eq!(e.query_string_parameters.first("room"), Some("my room"));
        assert_eq!(e.query_string_parameters.first("doc"), Some("b"));
        assert_eq!(e.query_string_parameters.first("x"), Some("1 2"));
        assert_eq!(
            e.multi_value_query_string_parameters.all("doc"),
            Some(vec!["a", "b"])
        );
        assert_eq!(e.headers["x-forwarded-for"], "10.0.0.13");

        // It survives the JSON round trip a Lambda invocation would put it through.
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["requestContext"]["routeKey"], "$connect");
        assert_eq!(json["requestContext"]["apiId"], "gy415nuibc");
        let back: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back.request_context.connection_id, c.connection_id);
        assert_eq!(back.query_string_parameters.first("room"), Some("my room"));
    }

    #[test]
    fn message_and_disconnect_events() {
        let m = message(&meta(), "hello".into());
        assert_eq!(m.request_context.route_key.as_deref(), Some("$default"));
        assert_eq!(m.request_context.event_type.as_deref(), Some("MESSAGE"));
        assert!(m.request_context.message_id.is_some());
        assert_eq!(m.body.as_deref(), Some("hello"));
        assert!(!m.is_base64_encoded);

        let d = disconnect(&meta(), 1001, "Going away");
        assert_eq!(d.request_context.route_key.as_deref(), Some("$disconnect"));
        assert_eq!(d.request_context.event_type.as_deref(), Some("DISCONNECT"));
        assert_eq!(d.request_context.disconnect_status_code, Some(1001));
        assert_eq!(
            d.request_context.disconnect_reason.as_deref(),
            Some("Going away")
        );
    }

    #[test]
    fn empty_query() {
        let (s, m) = query_parameters(None);
        assert!(s.is_empty() && m.is_empty());
        let (s, _) = query_parameters(Some(""));
        assert!(s.is_empty());
    }
}

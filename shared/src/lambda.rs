//! Mapping between API Gateway WebSocket events and the handler core. The Lambda crates and the
//! local gateway both go through [`handle_websocket_event`], so the mapping is exercised locally.
use std::collections::HashMap;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::backends::{self, StartError};
use crate::config::Config;
use crate::handler::{Handler, HandlerError};

/// The API Gateway route a Lambda serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Connect,
    Disconnect,
    Default,
}

impl Route {
    pub fn key(self) -> &'static str {
        match self {
            Route::Connect => "$connect",
            Route::Disconnect => "$disconnect",
            Route::Default => "$default",
        }
    }
}

/// Builds the handler a Lambda runs on, once per cold start: the backend's stores and the
/// management API fanout.
pub async fn build_handler(config: Config) -> Result<Handler, StartError> {
    let fanout = backends::lambda_fanout(&config).await;
    let ports = backends::stores(&config).await?.with_fanout(fanout);
    Ok(Handler::new(ports, config))
}

/// A Lambda's whole life: JSON logs (honouring `AWS_LAMBDA_LOG_LEVEL` / `AWS_LAMBDA_LOG_FORMAT`),
/// configuration and clients once per cold start, then one event at a time.
pub async fn serve(route: Route) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let handler = build_handler(Config::from_env()?).await?;
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(handle_route(handler, route, event.payload).await)
        },
    ))
    .await
}

/// Handles an event that must be for `route`: an integration wired to the wrong function is
/// refused loudly instead of running the wrong logic.
pub async fn handle_route(
    handler: &Handler,
    route: Route,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let got = event
        .request_context
        .route_key
        .as_deref()
        .unwrap_or_default();
    // Custom routes other than the three are delivered to $default's function.
    let matches = got == route.key() || (route == Route::Default && !got.starts_with("$"));
    if !matches {
        tracing::error!(expected = route.key(), got, "event for another route");
        return response(
            400,
            &format!("this function serves {}, not {got:?}", route.key()),
        );
    }
    handle_websocket_event(handler, event).await
}

/// Handles one API Gateway WebSocket event, whatever its route, and maps the outcome to the
/// response API Gateway expects: 200 accepts (on `$connect`, lets the connection open), 400
/// refuses bad input, 500 reports a backend failure (the body says which, the log says more).
pub async fn handle_websocket_event(
    handler: &Handler,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let route = context.route_key.as_deref().unwrap_or_default();
    let Some(connection_id) = context.connection_id.as_deref() else {
        return response(400, "event has no requestContext.connectionId");
    };
    let endpoint = management_endpoint(handler, &event);
    let result = match route {
        "$connect" => {
            let query: HashMap<String, String> = event
                .query_string_parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let offered = offered_protocols(&event.headers);
            match handler
                .on_connect_offering(connection_id, &endpoint, &query, &offered)
                .await
            {
                Ok(accepted) => {
                    let mut answer = response(200, "");
                    if let Some(protocol) = accepted
                        .subprotocol
                        .and_then(|p| http::HeaderValue::from_str(&p).ok())
                    {
                        answer
                            .headers
                            .insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
                    }
                    return answer;
                }
                Err(e) => {
                    tracing::warn!(connection_id, error = %e, "connection refused");
                    Err(e)
                }
            }
        }
        "$disconnect" => handler.on_disconnect(connection_id).await,
        "$default" => match body_text(&event) {
            Ok(body) => handler.on_message(connection_id, &endpoint, &body).await,
            Err(reason) => Err(HandlerError::BadRequest(reason)),
        },
        other => Err(HandlerError::BadRequest(format!("unknown route {other:?}"))),
    };
    match result {
        Ok(()) => response(200, ""),
        Err(HandlerError::BadRequest(reason)) => response(400, &reason),
        Err(HandlerError::Refused { status, reason }) => response(i64::from(status), &reason),
        Err(HandlerError::PolicyViolation(reason)) => response(403, &reason),
        Err(e) => {
            tracing::error!(connection_id, route, error = %e, "handler failed");
            response(500, &e.to_string())
        }
    }
}

/// The subprotocols a `$connect` request offered (`Sec-WebSocket-Protocol`, comma-separated,
/// possibly in several header lines).
fn offered_protocols(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Where posts to this event's connection go: the configured override, or the API's own
/// `https://{domainName}/{stage}` as AWS documents it.
pub fn management_endpoint(handler: &Handler, event: &ApiGatewayWebsocketProxyRequest) -> String {
    if let Some(endpoint) = &handler.config().management_endpoint {
        return endpoint.clone();
    }
    let context = &event.request_context;
    let domain = context.domain_name.as_deref().unwrap_or("localhost");
    match context.stage.as_deref() {
        Some(stage) if !stage.is_empty() => format!("https://{domain}/{stage}"),
        _ => format!("https://{domain}"),
    }
}

/// A `$default` body as text. API Gateway base64-encodes bodies it considers binary; ours are
/// text, but accept both.
fn body_text(event: &ApiGatewayWebsocketProxyRequest) -> Result<String, String> {
    let body = event.body.clone().unwrap_or_default();
    if !event.is_base64_encoded {
        return Ok(body);
    }
    let bytes = STANDARD
        .decode(body.trim())
        .map_err(|e| format!("event body is marked base64 but is not: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "binary frames are not supported".to_string())
}

fn response(status: i64, body: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = (!body.is_empty()).then(|| Body::Text(body.to_string()));
    response
}

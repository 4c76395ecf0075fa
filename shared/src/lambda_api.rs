//! The HTTP API as a Lambda behind a Function URL in `RESPONSE_STREAM` mode: the Function URL
//! event becomes an `http::Request`, `api::Api` answers, and the answer is streamed back (one
//! chunk, or the dashboard's event stream, which a buffered Lambda response could not carry).
//! Limits of that path: a stream lasts at most the function's timeout (15 minutes; the API ends
//! its streams after 14, and `EventSource` reconnects with `Last-Event-ID`), a request body is at
//! most 6 MB (Lambda's payload limit, below `YLAMBDA_MAX_ASSEMBLED_BYTES`), and a stream's first
//! 6 MB flow at full speed, then at 2 MB/s.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, StatusCode};
use lambda_runtime::{MetadataPrelude, StreamResponse};

use crate::api::{cors, stream_headers, Api, ApiError, ApiRequest, ApiResponse};
use crate::config::Config;
use crate::lambda::build_handler;

/// What the function streams back.
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>;

/// The API function's whole life: configuration and clients once per cold start, then requests.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let handler = Arc::new(build_handler(Config::from_env()?).await?);
    let api = Arc::new(Api::new(handler));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<LambdaFunctionUrlRequest>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(respond(&api, event.payload).await) }
        },
    ))
    .await
}

/// One request, answered as a stream.
pub async fn respond(api: &Api, event: LambdaFunctionUrlRequest) -> StreamResponse<ResponseStream> {
    let request = match to_request(event) {
        Ok(request) => request,
        Err(why) => return buffered(ApiError::bad_request(why).into_response()),
    };
    if request.uri().path() == "/api/events" && request.method() == Method::GET {
        return match api.events(&request).await {
            Ok(stream) => {
                let mut prelude = MetadataPrelude {
                    status_code: StatusCode::OK,
                    ..MetadataPrelude::default()
                };
                for (name, value) in stream_headers() {
                    prelude
                        .headers
                        .insert(name, HeaderValue::from_static(value));
                }
                StreamResponse {
                    metadata_prelude: prelude,
                    stream: Box::pin(stream.map(Ok)),
                }
            }
            Err(error) => {
                let mut response = error.into_response();
                cors(response.headers_mut());
                buffered(response)
            }
        };
    }
    buffered(api.handle(request).await)
}

/// A whole answer as a one-chunk stream.
fn buffered(response: ApiResponse) -> StreamResponse<ResponseStream> {
    let (parts, body) = response.into_parts();
    StreamResponse {
        metadata_prelude: MetadataPrelude {
            status_code: parts.status,
            headers: parts.headers,
            cookies: Vec::new(),
        },
        stream: Box::pin(futures::stream::once(async move { Ok(body) })),
    }
}

/// The request a Function URL event describes (payload format 2.0: method and raw path in the
/// request context, the body base64 when binary).
pub fn to_request(event: LambdaFunctionUrlRequest) -> Result<ApiRequest, String> {
    let method = event
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse::<Method>()
        .map_err(|e| format!("bad method: {e}"))?;
    let path = event
        .raw_path
        .or(event.request_context.http.path)
        .unwrap_or_else(|| "/".into());
    let uri = match event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let body = match event.body {
        None => Bytes::new(),
        Some(body) if event.is_base64_encoded => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| format!("body is not base64: {e}"))?,
        ),
        Some(body) => Bytes::from(body),
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(&uri)
        .body(body)
        .map_err(|e| format!("bad request line {uri:?}: {e}"))?;
    *request.headers_mut() = event.headers;
    Ok(request)
}

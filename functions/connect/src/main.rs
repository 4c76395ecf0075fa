//! The `$connect` route's Lambda: everything it does lives in `ylambda_shared`.
use ylambda_shared::lambda::{serve, Route};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Route::Connect).await
}

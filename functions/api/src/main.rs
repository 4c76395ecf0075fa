//! The HTTP API's Lambda, behind a Function URL that streams responses: everything it does lives
//! in `ylambda_shared` (`lambda_api.rs`, over `api/`).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ylambda_shared::lambda_api::serve().await
}

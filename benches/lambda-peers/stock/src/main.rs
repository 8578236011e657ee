//! The stock pattern, as `cargo lambda new` and the AWS guide for Rust
//! functions write it: `#[tokio::main]` (multi-thread), the default
//! subscriber of `lambda_runtime`, `run(service_fn(..))` over
//! `LambdaEvent<SqsEvent>`, each body decoded into a `serde_json::Value`, the
//! records that fail listed in an `SqsBatchResponse`.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};

async fn handler(event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let decoded = record
            .body
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>);
        if !matches!(decoded, Some(Ok(_))) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(handler)).await
}

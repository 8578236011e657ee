//! `lambda_runtime` alone: what its `Runtime` and layers add to the floor's
//! bare client. A current-thread runtime, the payload skipped by serde
//! (`IgnoredAny`), a constant empty batch response; no log subscriber.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde::de::IgnoredAny;
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: LambdaEvent<IgnoredAny>| async {
        Ok::<Value, Error>(json!({ "batchItemFailures": [] }))
    }))
    .await
}

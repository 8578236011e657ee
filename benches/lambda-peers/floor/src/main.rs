//! The floor: what one invocation costs with the `lambda_runtime` family's
//! client and nothing else. A current-thread runtime, `GET next`, the payload
//! read and dropped, `POST response` with a constant empty batch response.
//! No decode, no handler, no log line.

use http::Method;
use http_body_util::BodyExt;
use lambda_runtime_api_client::{PooledClient, body::Body, build_request};

type Error = Box<dyn std::error::Error + Send + Sync>;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const EMPTY: &str = r#"{"batchItemFailures":[]}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let client = PooledClient::builder().build();
    loop {
        let next = client
            .call(
                build_request()
                    .method(Method::GET)
                    .uri(NEXT)
                    .body(Body::empty())?,
            )
            .await?;
        let request_id = next
            .headers()
            .get("lambda-runtime-aws-request-id")
            .ok_or("no request id")?
            .to_str()?
            .to_owned();
        // The payload is read to its end (the connection is reused), then dropped.
        next.into_body().collect().await?;
        let uri = format!("/2018-06-01/runtime/invocation/{request_id}/response");
        let answer = client
            .call(
                build_request()
                    .method(Method::POST)
                    .uri(uri)
                    .body(Body::from(EMPTY))?,
            )
            .await?;
        answer.into_body().collect().await?;
    }
}

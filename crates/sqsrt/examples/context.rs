//! What a handler can read besides its message: the time it has left, the
//! signal that its work is being abandoned, and in Lambda mode the request id
//! and X-Ray trace id of the invocation it came in. Under Lambda Managed
//! Instances several invocations run at once in one process; each message
//! still sees its own invocation's ids (`_X_AMZN_TRACE_ID` cannot say which).
//!
//! The body may give `{"ms": N}`: the handler then works N ms, stopping
//! early (retried) if the work is abandoned.
//!
//! ```sh
//! cargo run --example context -p sqsrt -- lambda --help
//! ```

use std::time::Duration;

use sqsrt::{Context, HandlerError, Message, handler_fn};

async fn handle(message: Message, ctx: Context) -> Result<(), HandlerError> {
    // Pass these on to what the handler calls (a header, a span) to follow
    // one invocation through other services; `None` in worker mode.
    let (request_id, trace_id) = (ctx.request_id(), ctx.trace_id());
    tracing::info!(
        message_id = message.id(),
        invocation_request_id = request_id,
        invocation_trace_id = trace_id,
        time_left_ms = u64::try_from(ctx.remaining().as_millis()).unwrap_or(u64::MAX),
        "Handling."
    );
    let ms = serde_json::from_str::<serde_json::Value>(message.body())
        .ok()
        .and_then(|body| body["ms"].as_u64())
        .unwrap_or(0);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
        () = ctx.cancellation().cancelled() => Err(HandlerError::retry("abandoned")),
    }
}

#[tokio::main]
async fn main() -> Result<(), sqsrt::Error> {
    sqsrt::run(handler_fn(handle)).await
}

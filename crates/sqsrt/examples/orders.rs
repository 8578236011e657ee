//! A user's own sqsrt program: a typed handler for order messages, run in
//! Lambda or worker mode with the same flags and `SQSRT_*` variables as the
//! `sqsrt` binary.
//!
//! ```sh
//! cargo run --example orders -p sqsrt -- lambda --help
//! ```

use std::time::Duration;

use serde::Deserialize;
use sqsrt::{Context, HandlerError, Message, json_fn};

#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
    sku: String,
    qty: u32,
}

async fn reserve(order: Order, message: Message, ctx: Context) -> Result<(), HandlerError> {
    if order.qty == 0 {
        // Never going to work: dead-lettered when --dlq-url is set.
        return Err(HandlerError::permanent(format!(
            "order {} has no items",
            order.id
        )));
    }
    if order.sku.starts_with("BACKORDER-") {
        // Try again in a minute, whatever the backoff says.
        return Err(HandlerError::retry_after(
            format!("{} is back-ordered", order.sku),
            Duration::from_secs(60),
        ));
    }
    tracing::info!(
        order_id = order.id,
        sku = %order.sku,
        qty = order.qty,
        attempt = message.receive_count(),
        time_left_ms = u64::try_from(ctx.remaining().as_millis()).unwrap_or(u64::MAX),
        "Order reserved."
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), sqsrt::Error> {
    sqsrt::run(json_fn(reserve)).await
}

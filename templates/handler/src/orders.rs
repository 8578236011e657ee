//! The handler: reserves stock for each order message.

use serde::Deserialize;
use sqsrt::prelude::*;

/// The message body.
#[derive(Debug, Deserialize)]
pub struct Order {
    pub id: u64,
    pub sku: String,
    pub qty: u32,
}

/// What every message shares, built once at start (clients, pools, config).
#[derive(Debug)]
pub struct Orders {
    /// Most units one order may reserve (`STOCK_LIMIT`, default 100).
    pub limit: u32,
}

impl Orders {
    /// Reads the configuration; a bad value stops the start with its reason.
    pub fn from_env() -> anyhow::Result<Self> {
        let limit = match std::env::var("STOCK_LIMIT") {
            Ok(text) => text
                .parse()
                .map_err(|e| anyhow::anyhow!("STOCK_LIMIT={text:?} is not a number: {e}"))?,
            Err(_) => 100,
        };
        Ok(Self { limit })
    }

    /// Stands for a call to your inventory service: an error is worth a retry.
    async fn reserve(&self, order: &Order) -> anyhow::Result<()> {
        anyhow::ensure!(
            order.qty <= self.limit,
            "order {}: {} units asked, {} in stock",
            order.id,
            order.qty,
            self.limit
        );
        Ok(())
    }
}

/// Checks a SKU; an order with a malformed one can never succeed.
fn check_sku(sku: &str) -> anyhow::Result<()> {
    anyhow::ensure!(sku.starts_with("SKU-"), "unknown SKU {sku:?}");
    Ok(())
}

impl Handler for Orders {
    async fn handle(&self, message: Message, _ctx: Context) -> Result<(), HandlerError> {
        // A body that does not decode is permanent, its reason names the field.
        let order: Order = sqsrt::decode_json(&message)?;
        // `.permanent()?`: dead-lettered (with --dlq-url), never retried.
        check_sku(&order.sku).permanent()?;
        // `?`: a retry with backoff; the reason keeps the whole error chain.
        self.reserve(&order).await?;
        tracing::info!(order_id = order.id, sku = %order.sku, qty = order.qty, "Order reserved.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqsrt::testing::{self, Event, EventBuilder};

    use super::*;

    fn orders() -> Orders {
        Orders { limit: 100 }
    }

    #[tokio::test]
    async fn one_message() {
        let message = testing::message("m-1", r#"{"id": 1, "sku": "SKU-1", "qty": 2}"#);
        assert_eq!(orders().handle(message, testing::context()).await, Ok(()));
    }

    #[test]
    fn the_fixture_event_lists_exactly_the_failures() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events/orders.json");
        let event = Event::from_file(path).expect("the fixture is readable");
        let result = testing::run_event(orders(), event).expect("a valid SQS event");
        assert_eq!(result.failed_ids(), ["order-2", "order-3", "order-4"]);
        assert!(result.outcome("order-1").is_success());
        assert!(result.outcome("order-2").is_retry(), "too many units: retried");
        assert!(result.outcome("order-3").is_permanent(), "bad SKU: permanent");
        assert!(result.outcome("order-4").is_permanent(), "bad body: permanent");
    }

    #[test]
    fn reasons_say_what_is_wrong() {
        let event = EventBuilder::new()
            .record("a", r#"{"id": 7, "sku": "SKU-7", "qty": 500}"#)
            .record("b", r#"{"id": 8, "sku": "sku 8", "qty": 1}"#)
            .record("c", r#"{"id": 9, "sku": "SKU-9", "qty": "two"}"#);
        let result = testing::run_event(orders(), event).unwrap();
        assert_eq!(result.outcome("a").reason().as_deref(), Some("order 7: 500 units asked, 100 in stock"));
        assert_eq!(result.outcome("b").reason().as_deref(), Some("unknown SKU \"sku 8\""));
        let bad = result.outcome("c").reason().unwrap();
        assert!(bad.starts_with("body does not decode at qty"), "{bad}");
    }
}

//! Message bodies through `decode_json` into a typed order (nested structs,
//! enums, options, numbers, maps): no panic, a clear permanent error for what
//! does not decode, and what decodes survives a round trip unchanged.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use sqsrt_core::{Message, decode_json};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<Item>,
    note: Option<String>,
    status: Status,
    tags: BTreeMap<String, i32>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u16,
    price: f64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum Status {
    New,
    Paid { at: i64 },
    Cancelled { reason: String },
}

fuzz_target!(|bytes: &[u8]| {
    // SQS bodies are strings: undecodable bytes are replaced, as a sender's
    // SDK would refuse them.
    let body = String::from_utf8_lossy(bytes);
    let message = Message::new("fuzz", body.as_ref());
    match decode_json::<Order>(&message) {
        Ok(order) => {
            let again = serde_json::to_string(&order).expect("a decoded order encodes");
            let back: Order = decode_json(&Message::new("fuzz", again)).expect("and decodes again");
            // NaN never decodes from JSON, so equality holds.
            assert_eq!(order, back);
        }
        Err(e) if e.is_permanent() => {
            assert!(e.reason().starts_with("body does not decode"), "{e}");
        }
        Err(other) => panic!("a decode failure must be permanent: {other:?}"),
    }
});

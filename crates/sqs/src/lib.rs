//! sqsrt's SQS edge, shared by the Lambda adapter and the worker.
//!
//! - [`client`]: [`QueueClient`], the few SQS calls sqsrt makes, and
//!   [`SqsClient`], its aws-sdk-sqs implementation.
//! - [`dead_letter`]: the copy of a permanently failed message sent to a
//!   dead-letter queue, within SQS's attribute and size limits.
//! - [`arn`]: queue ARNs as Lambda's event source mapping gives them.
//! - [`receive`]: [`WorkerQueue`], the worker's receive, delete and queue
//!   attribute calls, and [`Received`] messages.
//! - [`message`]: core messages from SQS's attributes, visibility rounding.
//! - [`error`]: [`SqsError`], classed by what the caller does next.
//! - [`settle`]: [`SettlePolicy`], what both modes do with each outcome.
//!
//! ```
//! use sqsrt_core::Message;
//! use sqsrt_sqs::dead_letter::{dead_letter_message, REASON_ATTRIBUTE};
//!
//! let copy = dead_letter_message(&Message::new("m-1", "{}"), "bad order", "arn:aws:sqs:eu-west-1:1:orders", false)
//!     .expect("a message without attributes has room for sqsrt's three");
//! assert!(copy.message_attributes.contains_key(REASON_ATTRIBUTE));
//! ```

pub mod arn;
pub mod client;
pub mod dead_letter;
pub mod error;
pub mod message;
pub mod receive;
pub mod settle;

pub use arn::{ArnError, QueueArn};
pub use client::{
    EntryFailure, MAX_BATCH_ENTRIES, QueueClient, SqsClient, VisibilityChange, config_loader,
};
pub use dead_letter::{DeadLetterError, OutgoingMessage, dead_letter_message};
pub use error::{SqsError, SqsErrorKind};
pub use message::{attribute_from_parts, message_from_parts, visibility_secs};
pub use receive::{QueueAttributes, ReceiveOutput, ReceiveRequest, Received, WorkerQueue};
pub use settle::{Action, Delivery, SettlePolicy, is_fifo_queue, not_dead_lettered};

//! The narrow queue-client trait sqsrt needs, and its aws-sdk-sqs
//! implementation.

use std::future::Future;
use std::sync::Arc;

use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue};
use sqsrt_core::AttributeValue;
use tokio::sync::OnceCell;

use crate::arn::QueueArn;
use crate::dead_letter::OutgoingMessage;
use crate::error::{SqsError, SqsErrorKind};

/// SQS's largest batch for the `*Batch` operations.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// One entry of a `ChangeMessageVisibilityBatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityChange {
    /// Entry id, unique within the batch.
    pub id: String,
    /// The message's receipt handle.
    pub receipt_handle: String,
    /// New visibility timeout, seconds from now (0 releases the message).
    pub timeout_secs: u32,
}

/// An entry of a batch call that SQS refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The entry id given.
    pub id: String,
    /// SQS's error code.
    pub code: String,
    /// SQS's message.
    pub message: String,
}

/// The SQS calls sqsrt makes, narrow enough to fake in unit tests.
pub trait QueueClient: Send + Sync + 'static {
    /// The URL of the queue an event source ARN names (`GetQueueUrl`).
    fn queue_url(&self, arn: &QueueArn) -> impl Future<Output = Result<String, SqsError>> + Send;

    /// Changes the visibility of up to ten messages; returns the entries SQS
    /// refused.
    fn change_visibility_batch(
        &self,
        queue_url: &str,
        entries: Vec<VisibilityChange>,
    ) -> impl Future<Output = Result<Vec<EntryFailure>, SqsError>> + Send;

    /// Sends one message; returns its new message id.
    fn send_message(
        &self,
        queue_url: &str,
        message: OutgoingMessage,
    ) -> impl Future<Output = Result<String, SqsError>> + Send;
}

/// Lambda mode's bounds on each SQS call (backoff and release visibility
/// changes, dead-letter sends, `GetQueueUrl`): connect, each attempt, the
/// whole call, and attempts. In a region a call takes milliseconds; these
/// only stop an unreachable endpoint (a VPC without a route to SQS, where a
/// connect hangs) from holding an invocation for the SDK's defaults
/// (3.1 s per connect, 3 attempts).
pub mod lambda_bounds {
    use std::time::Duration;

    /// TCP (and TLS) connect.
    pub const CONNECT: Duration = Duration::from_millis(500);
    /// One attempt, from sending to the whole answer.
    pub const ATTEMPT: Duration = Duration::from_secs(1);
    /// The call, attempts and backoff between them included.
    pub const CALL: Duration = Duration::from_secs(2);
    /// Attempts per call.
    pub const ATTEMPTS: u32 = 2;
}

/// [`QueueClient`] over `aws_sdk_sqs::Client`.
#[derive(Debug, Clone, Default)]
pub struct SqsClient {
    inner: Arc<OnceCell<aws_sdk_sqs::Client>>,
    /// Built from the environment with [`lambda_bounds`].
    bounded: bool,
}

impl SqsClient {
    /// Wraps an SDK client.
    #[must_use]
    pub fn new(inner: aws_sdk_sqs::Client) -> Self {
        Self {
            inner: Arc::new(OnceCell::new_with(Some(inner))),
            bounded: false,
        }
    }

    /// A client from the SDK's own environment and credential chain
    /// (`AWS_REGION`, `AWS_ENDPOINT_URL[_SQS]`, IRSA web identity, ...).
    pub async fn from_env() -> Self {
        let this = Self::from_env_lazy();
        this.sdk().await;
        this
    }

    /// Like [`SqsClient::from_env`], but the environment is read at the first
    /// call, so a Lambda that never calls SQS does not pay for it at cold start.
    #[must_use]
    pub fn from_env_lazy() -> Self {
        Self::default()
    }

    /// Like [`SqsClient::from_env_lazy`], every call within
    /// [`lambda_bounds`] (Lambda mode: best-effort calls that must not hold
    /// an invocation).
    #[must_use]
    pub fn from_env_lazy_bounded() -> Self {
        Self {
            inner: Arc::default(),
            bounded: true,
        }
    }

    /// The SDK client, for calls this trait does not cover.
    pub async fn sdk(&self) -> &aws_sdk_sqs::Client {
        self.inner
            .get_or_init(|| async {
                let mut loader = config_loader();
                if self.bounded {
                    loader = loader
                        .timeout_config(
                            aws_config::timeout::TimeoutConfig::builder()
                                .connect_timeout(lambda_bounds::CONNECT)
                                .operation_attempt_timeout(lambda_bounds::ATTEMPT)
                                .operation_timeout(lambda_bounds::CALL)
                                .build(),
                        )
                        .retry_config(
                            aws_config::retry::RetryConfig::standard()
                                .with_max_attempts(lambda_bounds::ATTEMPTS),
                        );
                }
                aws_sdk_sqs::Client::new(&loader.load().await)
            })
            .await
    }
}

/// The SDK's config loader with sqsrt's HTTPS client (rustls on ring, the
/// system's root certificates): the SDK's own environment and credential
/// chain, for this crate's client and for programs that build their own.
#[must_use]
pub fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

/// The refused entries of a `*Batch` call.
pub(crate) fn entry_failures(
    failed: Vec<aws_sdk_sqs::types::BatchResultErrorEntry>,
) -> Vec<EntryFailure> {
    failed
        .into_iter()
        .map(|f| EntryFailure {
            id: f.id,
            code: f.code,
            message: f.message.unwrap_or_default(),
        })
        .collect()
}

fn to_sdk_attribute(attribute: &sqsrt_core::MessageAttribute) -> MessageAttributeValue {
    let builder = MessageAttributeValue::builder().data_type(&attribute.data_type);
    let builder = match &attribute.value {
        AttributeValue::String(s) => builder.string_value(s),
        AttributeValue::Binary(b) => builder.binary_value(Blob::new(b.clone())),
    };
    builder
        .build()
        .expect("data_type, the one required field, is always set")
}

impl QueueClient for SqsClient {
    async fn queue_url(&self, arn: &QueueArn) -> Result<String, SqsError> {
        let out = self
            .sdk()
            .await
            .get_queue_url()
            .queue_name(&arn.name)
            .queue_owner_aws_account_id(&arn.account)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("GetQueueUrl", &e))?;
        out.queue_url.ok_or_else(|| SqsError {
            operation: "GetQueueUrl",
            kind: SqsErrorKind::Service,
            code: None,
            message: format!("no URL returned for {arn}"),
        })
    }

    async fn change_visibility_batch(
        &self,
        queue_url: &str,
        entries: Vec<VisibilityChange>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        let entries = entries
            .into_iter()
            .map(|e| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(e.id)
                    .receipt_handle(e.receipt_handle)
                    .visibility_timeout(i32::try_from(e.timeout_secs).unwrap_or(i32::MAX))
                    .build()
                    .expect("id and receipt handle, the required fields, are always set")
            })
            .collect();
        let out = self
            .sdk()
            .await
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("ChangeMessageVisibilityBatch", &e))?;
        Ok(entry_failures(out.failed))
    }

    async fn send_message(
        &self,
        queue_url: &str,
        message: OutgoingMessage,
    ) -> Result<String, SqsError> {
        let attributes = message
            .message_attributes
            .iter()
            .map(|(name, attribute)| (name.to_owned(), to_sdk_attribute(attribute)))
            .collect();
        let out = self
            .sdk()
            .await
            .send_message()
            .queue_url(queue_url)
            .message_body(message.body)
            .set_message_attributes(Some(attributes))
            .set_message_group_id(message.group_id)
            .set_message_deduplication_id(message.deduplication_id)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("SendMessage", &e))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

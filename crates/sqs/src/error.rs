//! Errors of calls to SQS, classed by what the caller does next.

use std::fmt;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What kind of failure an SQS call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqsErrorKind {
    /// The caller lacks the IAM permission: retrying will not help.
    AccessDenied,
    /// The queue does not exist (or the URL is wrong).
    QueueNotFound,
    /// The receipt handle is no longer valid (the message was received again,
    /// or its visibility lapsed).
    ReceiptHandleInvalid,
    /// SQS asked us to slow down.
    Throttled,
    /// Any other error answered by SQS.
    Service,
    /// No answer: connection, timeout, DNS, credentials.
    Transport,
}

/// A failed SQS call: the operation, the error code when SQS answered, and
/// a readable message: the service's own message, or the chain of causes of
/// a call that got no answer. (The SDK's full error, which ends in the raw
/// response's debug dump, is logged at debug level when the error is made.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS {operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct SqsError {
    /// The SQS operation, e.g. `SendMessage`.
    pub operation: &'static str,
    /// What kind of failure.
    pub kind: SqsErrorKind,
    /// SQS's error code, when it answered.
    pub code: Option<String>,
    /// The service's message, or the causes of a failed call, one line.
    pub message: String,
}

impl SqsError {
    /// Classes an error code SQS returned (query or JSON protocol names).
    #[must_use]
    pub fn kind_of_code(code: &str) -> SqsErrorKind {
        let code = code.rsplit('.').next().unwrap_or(code);
        match code {
            c if c.contains("AccessDenied")
                || c == "InvalidClientTokenId"
                || c == "UnrecognizedClientException" =>
            {
                SqsErrorKind::AccessDenied
            }
            "QueueDoesNotExist"
            | "NonExistentQueue"
            | "AWS.SimpleQueueService.NonExistentQueue" => SqsErrorKind::QueueNotFound,
            "ReceiptHandleIsInvalid" | "InvalidParameterValue" | "MessageNotInflight" => {
                SqsErrorKind::ReceiptHandleInvalid
            }
            c if c.contains("Throttl") || c == "RequestThrottled" || c == "OverLimit" => {
                SqsErrorKind::Throttled
            }
            _ => SqsErrorKind::Service,
        }
    }

    /// Builds the error of a failed SDK call.
    pub fn from_sdk<E, R>(operation: &'static str, error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        tracing::debug!(operation, error = %DisplayErrorContext(error), "SQS call failed (the SDK's full error).");
        match error {
            SdkError::ServiceError(service) => {
                let code = service.err().code().map(str::to_owned);
                let message = service
                    .err()
                    .message()
                    .map_or_else(|| "no message in the answer".to_owned(), str::to_owned);
                let kind = code
                    .as_deref()
                    .map_or(SqsErrorKind::Service, Self::kind_of_code);
                Self {
                    operation,
                    kind,
                    code,
                    message,
                }
            }
            _ => Self {
                operation,
                kind: SqsErrorKind::Transport,
                code: None,
                message: causes(error),
            },
        }
    }
}

/// The error's causes, outermost first, one line: repeated texts once, each
/// cut at 200 characters (a cause that embeds a debug dump stays short).
fn causes(error: &dyn std::error::Error) -> String {
    const MAX_CAUSE: usize = 200;
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let mut text = e.to_string().replace('\n', " ");
        if text.len() > MAX_CAUSE {
            let mut end = MAX_CAUSE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_without_answer_reads_as_its_causes_in_one_line() {
        #[derive(Debug, thiserror::Error)]
        #[error("error trying to connect")]
        struct Connect(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let error: SdkError<aws_sdk_sqs::operation::receive_message::ReceiveMessageError, ()> =
            SdkError::timeout_error(Connect(io));
        let e = SqsError::from_sdk("ReceiveMessage", &error);
        assert_eq!(e.kind, SqsErrorKind::Transport);
        assert_eq!(
            e.to_string(),
            "SQS ReceiveMessage failed: request has timed out: error trying to connect: Connection refused"
        );
        let long = std::io::Error::other("x".repeat(1_000));
        assert!(causes(&long).len() < 210, "cut");
    }

    #[test]
    fn codes_of_both_protocols_are_classed() {
        assert_eq!(
            SqsError::kind_of_code("AccessDenied"),
            SqsErrorKind::AccessDenied
        );
        assert_eq!(
            SqsError::kind_of_code("AccessDeniedException"),
            SqsErrorKind::AccessDenied
        );
        assert_eq!(
            SqsError::kind_of_code("AWS.SimpleQueueService.NonExistentQueue"),
            SqsErrorKind::QueueNotFound
        );
        assert_eq!(
            SqsError::kind_of_code("QueueDoesNotExist"),
            SqsErrorKind::QueueNotFound
        );
        assert_eq!(
            SqsError::kind_of_code("ThrottlingException"),
            SqsErrorKind::Throttled
        );
        assert_eq!(
            SqsError::kind_of_code("ReceiptHandleIsInvalid"),
            SqsErrorKind::ReceiptHandleInvalid
        );
        assert_eq!(
            SqsError::kind_of_code("InternalError"),
            SqsErrorKind::Service
        );
    }
}

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
/// the full message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SQS {operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct SqsError {
    /// The SQS operation, e.g. `SendMessage`.
    pub operation: &'static str,
    /// What kind of failure.
    pub kind: SqsErrorKind,
    /// SQS's error code, when it answered.
    pub code: Option<String>,
    /// The message, with the whole source chain.
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
        let message = DisplayErrorContext(error).to_string();
        match error {
            SdkError::ServiceError(service) => {
                let code = service.err().code().map(str::to_owned);
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
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Queue ARNs, as Lambda's event source mapping gives them.

use std::fmt;

/// A parsed SQS queue ARN: `arn:<partition>:sqs:<region>:<account>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueArn {
    /// `aws`, `aws-cn`, ...
    pub partition: String,
    /// The queue's region.
    pub region: String,
    /// The owning account id.
    pub account: String,
    /// The queue name (`.fifo` suffix included).
    pub name: String,
}

/// An ARN that is not an SQS queue ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an SQS queue ARN (expected arn:<partition>:sqs:<region>:<account>:<name>): {0:?}")]
pub struct ArnError(pub String);

impl QueueArn {
    /// Parses an ARN.
    ///
    /// # Errors
    ///
    /// [`ArnError`] when it does not have the six parts of an SQS queue ARN.
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "sqs", region, account, name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && !account.is_empty()
                    && !name.is_empty() =>
            {
                Ok(Self {
                    partition: (*partition).to_owned(),
                    region: (*region).to_owned(),
                    account: (*account).to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(ArnError(arn.to_owned())),
        }
    }

    /// Whether it names a FIFO queue.
    #[must_use]
    pub fn is_fifo(&self) -> bool {
        crate::settle::is_fifo_queue(&self.name)
    }
}

impl fmt::Display for QueueArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:sqs:{}:{}:{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_queue_arn_and_round_trips() {
        let s = "arn:aws:sqs:eu-west-1:123456789012:orders.fifo";
        let arn = QueueArn::parse(s).unwrap();
        assert_eq!(arn.region, "eu-west-1");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.name, "orders.fifo");
        assert!(arn.is_fifo());
        assert_eq!(arn.to_string(), s);
    }

    #[test]
    fn rejects_other_arns_naming_the_input() {
        let err = QueueArn::parse("arn:aws:sns:eu-west-1:1:topic").unwrap_err();
        assert!(err.to_string().contains("arn:aws:sns"));
        assert!(QueueArn::parse("arn:aws:sqs:eu-west-1:1:").is_err());
        assert!(QueueArn::parse("").is_err());
    }
}

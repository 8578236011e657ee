//! Where a typed body sits inside an SQS message: the whole body ([`Plain`]),
//! an SNS notification ([`Sns`]), an EventBridge event ([`EventBridge`]) or
//! an S3 event notification ([`S3`]). Used by [`JsonFn::envelope`](crate::JsonFn::envelope)
//! and [`decode_json_in`].
//!
//! A body that does not match its envelope, or whose payload does not decode
//! into the handler's type, is a permanent failure whose reason names the
//! field path (`SNS Message does not decode at items[1].qty: ...`).

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::handler::HandlerError;

/// Opens a message body: decodes the handler's type `T` from it, or says
/// that there is nothing for the handler (`Ok(None)`, the message succeeds
/// without reaching it).
pub trait Envelope: fmt::Debug + Send + Sync + 'static {
    /// Decodes `T` from `body`.
    ///
    /// # Errors
    ///
    /// [`HandlerError::Permanent`] naming the path when the body does not
    /// match the envelope or `T`.
    fn open<T: DeserializeOwned>(&self, body: &str) -> Result<Option<T>, HandlerError>;
}

/// The body itself is the JSON of `T` (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Envelope for Plain {
    fn open<T: DeserializeOwned>(&self, body: &str) -> Result<Option<T>, HandlerError> {
        decode(body, "body").map(Some)
    }
}

/// An SNS notification delivered to an SQS subscription with raw message
/// delivery off: the body is SNS's JSON envelope (`"Type": "Notification"`)
/// and `T` is decoded from the string in its `Message` field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sns;

#[derive(Deserialize)]
struct SnsNotification {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

impl Envelope for Sns {
    fn open<T: DeserializeOwned>(&self, body: &str) -> Result<Option<T>, HandlerError> {
        let notification: SnsNotification = decode(body, "body (an SNS notification)")?;
        if notification.kind != "Notification" {
            return Err(HandlerError::permanent(format!(
                "body is an SNS message of Type {:?}, not a Notification",
                notification.kind
            )));
        }
        decode(&notification.message, "SNS Message").map(Some)
    }
}

/// An EventBridge event sent to an SQS target: the body is the whole event
/// (`version`, `id`, `detail-type`, `source`, ...) and `T` is decoded from
/// its `detail`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventBridge;

#[derive(Deserialize)]
struct EventBridgeEvent<T> {
    #[serde(rename = "detail-type")]
    _detail_type: IgnoredAny,
    #[serde(rename = "source")]
    _source: IgnoredAny,
    detail: T,
}

impl Envelope for EventBridge {
    fn open<T: DeserializeOwned>(&self, body: &str) -> Result<Option<T>, HandlerError> {
        decode::<EventBridgeEvent<T>>(body, "body (an EventBridge event)").map(|e| Some(e.detail))
    }
}

/// An S3 event notification sent to SQS: `T` is decoded from the whole body
/// (`{"Records": [...]}`; `aws_lambda_events::s3::S3Event` fits). The
/// `s3:TestEvent` that S3 sends when notifications are set up succeeds
/// without reaching the handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3;

#[derive(Deserialize)]
struct S3Probe {
    #[serde(rename = "Event")]
    event: Option<IgnoredOrString>,
}

/// `Event` as a string when it is one; anything else is not a test event.
#[derive(Deserialize)]
#[serde(untagged)]
enum IgnoredOrString {
    Text(String),
    Other(IgnoredAny),
}

impl Envelope for S3 {
    fn open<T: DeserializeOwned>(&self, body: &str) -> Result<Option<T>, HandlerError> {
        // A quick look first: only a body that mentions the test event pays
        // for the second parse.
        if body.contains("s3:TestEvent")
            && let Ok(S3Probe {
                event: Some(IgnoredOrString::Text(event)),
            }) = serde_json::from_str(body)
            && event == "s3:TestEvent"
        {
            return Ok(None);
        }
        decode(body, "body (an S3 event notification)").map(Some)
    }
}

/// Decodes `text` as JSON into `T`; `what` names the text in the reason.
///
/// A body that decodes costs one plain `serde_json` pass: the path-tracking
/// decoder (which clones every map key it passes) runs only when that pass
/// fails, to name where. That pass was about a quarter of the `scripted`
/// handler's cost per message (callgrind, docs/performance.md).
pub(crate) fn decode<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, HandlerError> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        HandlerError::permanent(format!(
            "{what} does not decode at {}: {}",
            e.path(),
            e.inner()
        ))
    })?;
    de.end()
        .map_err(|e| HandlerError::permanent(format!("{what} does not decode: {e}")))?;
    Ok(value)
}

/// Decodes a message body as JSON into `T` from inside `envelope`;
/// `Ok(None)` when the message carries nothing for the handler (S3's test
/// event).
///
/// # Errors
///
/// [`HandlerError::Permanent`] naming the path when the body does not match.
pub fn decode_json_in<T: DeserializeOwned, En: Envelope>(
    envelope: &En,
    body: &str,
) -> Result<Option<T>, HandlerError> {
    envelope.open(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order {
        id: u64,
        qty: u32,
    }

    fn reason<En: Envelope>(envelope: &En, body: &str) -> String {
        match envelope.open::<Order>(body) {
            Err(e) if e.is_permanent() => e.reason().to_owned(),
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    const SNS: &str = r#"{
      "Type": "Notification",
      "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
      "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
      "Subject": "order",
      "Message": "{\"id\": 7, \"qty\": 2}",
      "Timestamp": "2026-11-27T12:00:00.000Z",
      "SignatureVersion": "1",
      "Signature": "EXAMPLE",
      "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
      "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    }"#;

    #[test]
    fn sns_notification_decodes_its_message_string() {
        assert_eq!(
            Sns.open::<Order>(SNS).unwrap(),
            Some(Order { id: 7, qty: 2 })
        );
        let bad = SNS.replace(r#"\"qty\": 2"#, r#"\"qty\": \"two\""#);
        let r = reason(&Sns, &bad);
        assert!(
            r.starts_with("SNS Message does not decode at qty: invalid type: string"),
            "{r}"
        );
        let r = reason(&Sns, r#"{"id": 7, "qty": 2}"#);
        assert!(r.contains("missing field `Type`"), "{r}");
        let r = reason(
            &Sns,
            &SNS.replace("\"Notification\"", "\"SubscriptionConfirmation\""),
        );
        assert!(
            r.contains("\"SubscriptionConfirmation\", not a Notification"),
            "{r}"
        );
    }

    const EVENTBRIDGE: &str = r#"{
      "version": "0",
      "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
      "detail-type": "OrderPlaced",
      "source": "shop.orders",
      "account": "123456789012",
      "time": "2026-11-27T12:00:00Z",
      "region": "us-east-1",
      "resources": [],
      "detail": {"id": 9, "qty": 1}
    }"#;

    #[test]
    fn eventbridge_event_decodes_its_detail_and_names_the_path() {
        assert_eq!(
            EventBridge.open::<Order>(EVENTBRIDGE).unwrap(),
            Some(Order { id: 9, qty: 1 })
        );
        let r = reason(
            &EventBridge,
            &EVENTBRIDGE.replace(r#""qty": 1"#, r#""qty": -1"#),
        );
        assert!(
            r.starts_with("body (an EventBridge event) does not decode at detail.qty: invalid value: integer `-1`"),
            "{r}"
        );
        let r = reason(&EventBridge, r#"{"id": 9, "qty": 1}"#);
        assert!(r.contains("missing field"), "{r}");
    }

    #[test]
    fn s3_test_event_succeeds_without_the_handler_and_records_decode() {
        #[derive(Debug, Deserialize)]
        struct Notification {
            #[serde(rename = "Records")]
            records: Vec<serde_json::Value>,
        }
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-27T12:00:00.000Z","Bucket":"uploads","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;
        assert!(S3.open::<Notification>(test).unwrap().is_none());
        let event =
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"a.csv"}}}]}"#;
        assert_eq!(
            S3.open::<Notification>(event)
                .unwrap()
                .unwrap()
                .records
                .len(),
            1
        );
        // A body naming the test event elsewhere is not one.
        let r = match S3.open::<Notification>(r#"{"note":"s3:TestEvent"}"#) {
            Err(e) => e.reason().to_owned(),
            Ok(_) => panic!("decoded"),
        };
        assert!(r.contains("missing field `Records`"), "{r}");
    }

    #[test]
    fn plain_is_the_whole_body() {
        assert_eq!(
            Plain.open::<Order>(r#"{"id":1,"qty":3}"#).unwrap(),
            Some(Order { id: 1, qty: 3 })
        );
        assert!(
            reason(&Plain, "42")
                .starts_with("body does not decode at .: invalid type: integer `42`")
        );
    }
}

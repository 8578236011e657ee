use sqsrt_core::MessageAttribute;

use super::*;

fn config() -> KafkaConfig {
    KafkaConfig {
        brokers: "127.0.0.1:9092".to_owned(),
        topic: "orders".to_owned(),
        key_attribute: Some("Customer".to_owned()),
        timeout: DEFAULT_TIMEOUT,
        tls: None,
        sasl: None,
    }
}

fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value.as_ref()?).ok())
}

#[test]
fn bad_configurations_are_named() {
    for brokers in ["", "localhost", "a:1,b", ":9092", "host:port"] {
        let error = KafkaSink::new(KafkaConfig {
            brokers: brokers.to_owned(),
            ..config()
        })
        .expect_err(brokers);
        assert!(matches!(error, KafkaConfigError::Brokers { .. }), "{error}");
    }
    assert!(
        KafkaSink::new(KafkaConfig {
            brokers: "a:1, b:2".to_owned(),
            ..config()
        })
        .is_ok()
    );
    for topic in ["", ".", "..", "orders/eu", &"x".repeat(250)] {
        let error = KafkaSink::new(KafkaConfig {
            topic: topic.to_owned(),
            ..config()
        })
        .expect_err(topic);
        assert!(error.to_string().contains("topic name"), "{error}");
    }
    let zero = KafkaSink::new(KafkaConfig {
        timeout: Duration::ZERO,
        ..config()
    });
    assert_eq!(zero.unwrap_err(), KafkaConfigError::Timeout);
    assert_eq!(
        "scram-sha-512".parse::<SaslMechanism>(),
        Ok(SaslMechanism::ScramSha512)
    );
    assert!(
        "GSSAPI"
            .parse::<SaslMechanism>()
            .unwrap_err()
            .contains("PLAIN")
    );
    let no_user = KafkaSink::new(KafkaConfig {
        sasl: Some(KafkaSasl {
            mechanism: SaslMechanism::Plain,
            username: String::new(),
            password: "secret".to_owned(),
        }),
        ..config()
    });
    assert_eq!(no_user.unwrap_err(), KafkaConfigError::SaslUsername);
}

#[test]
fn the_password_is_not_in_debug_output() {
    let config = KafkaConfig {
        sasl: Some(KafkaSasl {
            mechanism: SaslMechanism::ScramSha256,
            username: "sqsrt".to_owned(),
            password: "hunter2".to_owned(),
        }),
        ..config()
    };
    let shown = format!("{:?}", KafkaSink::new(config).expect("valid"));
    assert!(
        shown.contains("sqsrt") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn the_record_carries_body_key_and_headers() {
    let sink = KafkaSink::new(config()).expect("valid");
    let message = Message::new("m-1", r#"{"order":7}"#)
        .with_message_attribute("Customer", MessageAttribute::string("acme"))
        .with_message_attribute("Priority", MessageAttribute::number(3))
        .with_message_attribute("Blob", MessageAttribute::binary(vec![1, 2]));
    let record = sink.record(message.clone());
    assert_eq!(record.topic, "orders");
    assert_eq!(record.value.as_deref(), Some(br#"{"order":7}"#.as_slice()));
    assert_eq!(
        record.key.as_deref(),
        Some(b"acme".as_slice()),
        "the key attribute"
    );
    assert_eq!(header(&record, MESSAGE_ID_HEADER), Some("m-1"));
    assert_eq!(header(&record, "Customer"), Some("acme"));
    assert_eq!(header(&record, "Priority"), Some("3"));
    assert_eq!(header(&record, "Blob"), None, "binary: skipped");
    assert_eq!(record.headers.len(), 3);
    assert_eq!(sink.inner.skipped.load(Ordering::Relaxed), 1);

    let grouped = sink.record(message.with_group("tenant-9"));
    assert_eq!(
        grouped.key.as_deref(),
        Some(b"tenant-9".as_slice()),
        "the group id first"
    );
    let plain = sink.record(Message::new("m-2", "x"));
    assert_eq!(plain.key, None, "no group, no key attribute: no key");
}

#[test]
fn failures_map_to_outcomes_and_faults() {
    let config = config();
    let classify = |error: KrafkaError| failure(&error, &config);
    let too_large = classify(KrafkaError::Broker {
        code: ErrorCode::MessageTooLarge,
        message: "1048576".to_owned(),
    });
    assert!(too_large.is_permanent(), "{too_large}");
    assert!(
        too_large.reason().contains("larger than the topic accepts"),
        "{too_large}"
    );
    let local = classify(KrafkaError::config(
        "record size 2000000 B exceeds max_request_size (1048576 B)",
    ));
    assert!(
        local.is_permanent() && local.reason().contains("2000000"),
        "{local}"
    );

    let refused = classify(KrafkaError::Network(Arc::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    ))));
    assert_eq!(refused.sink_fault(), Some(SinkFault::Unreachable));
    assert!(refused.reason().contains("127.0.0.1:9092"), "{refused}");
    let unavailable = classify(KrafkaError::Broker {
        code: ErrorCode::LeaderNotAvailable,
        message: String::new(),
    });
    assert_eq!(unavailable.sink_fault(), Some(SinkFault::Unreachable));
    let timed_out = classify(KrafkaError::Timeout {
        operation: "produce".to_owned(),
    });
    assert_eq!(timed_out.sink_fault(), Some(SinkFault::Timeout));
    let denied = classify(KrafkaError::Broker {
        code: ErrorCode::TopicAuthorizationFailed,
        message: String::new(),
    });
    assert!(
        !denied.is_permanent() && denied.sink_fault().is_none(),
        "{denied}"
    );
}

#[tokio::test]
async fn an_unreachable_broker_is_an_outage() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let brokers = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let sink = KafkaSink::new(KafkaConfig {
        brokers,
        timeout: Duration::from_secs(1),
        ..config()
    })
    .expect("valid");
    let ctx = Context::with_deadline(tokio::time::Instant::now() + Duration::from_secs(5));
    let error = sink
        .forward(Message::new("m", "x"), &ctx)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.sink_fault(), Some(SinkFault::Unreachable), "{error}");
}

//! The fast decoder ([`SqsRecords`]) against the stock path
//! (`aws_lambda_events::SqsEvent` + `into_messages`): the same messages,
//! metas and errors on every fixture and on generated events.

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use sqsrt_lambda::stock::into_messages;
use sqsrt_lambda::{EventError, SqsRecords};

/// Both decoders on the same bytes: equal results, or both rejecting.
fn assert_same(bytes: &[u8]) {
    let stock = serde_json::from_slice::<SqsEvent>(bytes).map(into_messages);
    let fast = SqsRecords::from_slice(bytes).map(SqsRecords::into_messages);
    let split = SqsRecords::from_slice_split(bytes, 0).map(SqsRecords::into_messages);
    assert_eq!(
        fast.as_ref().ok(),
        split.as_ref().ok(),
        "two threads differ on {}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(fast.is_err(), split.is_err());
    match (stock, fast) {
        (Ok(stock), Ok(fast)) => assert_eq!(stock, fast, "{}", String::from_utf8_lossy(bytes)),
        (Err(_), Err(_)) => {}
        (stock, fast) => panic!(
            "decoders disagree on {}:\nstock {stock:?}\nfast {fast:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn every_fixture_decodes_the_same() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "expected.json" {
            continue;
        }
        assert_same(&std::fs::read(&path).unwrap());
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} fixtures");
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).expect("below len")]
    }
}

const TEXTS: &[&str] = &[
    "",
    "plain",
    "{\"action\":\"ok\",\"n\":1}",
    "quote \" backslash \\ newline \n tab \t",
    "unicode é ✓ 😀 \u{1F600}",
    "\u{0}\u{1f} control",
    "arn:aws:sqs:us-east-1:123456789012:orders",
    "arn:aws:sqs:eu-west-1:123456789012:orders.fifo",
];

/// A value for a string field: usually a string, sometimes null or absent.
fn maybe_string(rng: &mut Rng, record: &mut serde_json::Map<String, Value>, key: &str) {
    match rng.below(10) {
        0 => {}
        1 => {
            record.insert(key.to_owned(), Value::Null);
        }
        _ => {
            record.insert(key.to_owned(), json!(rng.pick(TEXTS)));
        }
    }
}

fn record(rng: &mut Rng) -> Value {
    let mut r = serde_json::Map::new();
    match rng.below(20) {
        0 => {}
        1 => {
            r.insert("messageId".into(), Value::Null);
        }
        2 => {
            r.insert("messageId".into(), json!(""));
        }
        _ => {
            r.insert("messageId".into(), json!(format!("id-{}", rng.next())));
        }
    }
    for key in [
        "receiptHandle",
        "body",
        "md5OfBody",
        "eventSource",
        "awsRegion",
        "eventSourceARN",
    ] {
        maybe_string(rng, &mut r, key);
    }
    if rng.below(8) > 0 {
        let mut attributes = serde_json::Map::new();
        for (key, value) in [
            ("ApproximateReceiveCount", format!("{}", rng.below(5))),
            (
                "SentTimestamp",
                format!("{}", 1_700_000_000_000 + rng.below(1_000_000)),
            ),
            ("MessageGroupId", rng.pick(TEXTS).to_owned()),
            ("SenderId", "AIDAIENQZJOLO23YVJ4VO".to_owned()),
            ("ApproximateReceiveCount", "not a number".to_owned()),
        ] {
            if rng.below(3) > 0 {
                attributes.insert(key.to_owned(), json!(value));
            }
        }
        r.insert("attributes".into(), Value::Object(attributes));
    } else if rng.below(2) == 0 {
        r.insert("attributes".into(), Value::Null);
    }
    if rng.below(3) > 0 {
        let mut attrs = serde_json::Map::new();
        for i in 0..rng.below(4) {
            let a = match rng.below(5) {
                0 => json!({"stringValue": rng.pick(TEXTS), "dataType": "String"}),
                1 => {
                    json!({"stringValue": "42", "dataType": "Number.int", "stringListValues": [], "binaryListValues": []})
                }
                2 => json!({"binaryValue": "AAEC/w==", "dataType": "Binary"}),
                3 => json!({"binaryValue": null, "stringValue": null}),
                _ => json!({"dataType": "String"}),
            };
            attrs.insert(format!("attr{i}"), a);
        }
        r.insert("messageAttributes".into(), Value::Object(attrs));
    }
    if rng.below(10) == 0 {
        r.insert(
            "somethingNew".into(),
            json!({"nested": [1, 2, {"x": null}]}),
        );
    }
    Value::Object(r)
}

#[test]
fn generated_events_decode_the_same() {
    let mut rng = Rng(0x5EED_5EED_1234_5678);
    for _ in 0..2_000 {
        let n = rng.below(12);
        let records: Vec<Value> = (0..n).map(|_| record(&mut rng)).collect();
        let event = json!({ "Records": records, "extra": rng.below(2) == 0 });
        assert_same(event.to_string().as_bytes());
    }
}

#[test]
fn generated_compact_events_decode_the_same_on_two_threads() {
    // The shape Lambda sends (`{"Records":[...]}`, compact), which the
    // two-thread path takes.
    let mut rng = Rng(0x0005_1017_C0DE_0042);
    for _ in 0..500 {
        let n = 2 + rng.below(20);
        let records: Vec<Value> = (0..n).map(|_| record(&mut rng)).collect();
        assert_same(json!({ "Records": records }).to_string().as_bytes());
    }
}

#[test]
fn the_two_thread_cut_is_never_fooled_by_look_alikes() {
    let record = |id: &str, body: &str| json!({"messageId": id, "body": body, "receiptHandle": "r", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q"});
    let look_alike = r#"},{"messageId":"fake"},{"#;
    let cases = [
        // Cut candidates inside bodies, on both sides of the middle.
        json!({"Records": (0..9).map(|i| record(&i.to_string(), look_alike)).collect::<Vec<_>>()}),
        json!({"Records": [record("a", "x"), record("b", "},{\"messageId\":"), record("c", "}"), record("d", "{\"")]}),
        // Objects in arrays inside a record: a `},{"` one level down.
        json!({"Records": [record("a", "x"), {"messageId": "b", "unknown": [{"k": 1}, {"k": 2}, {"k": 3}]}, record("c", "y")]}),
        // A record without messageId in the second half: its index counts the first half.
        json!({"Records": [record("a", "x"), record("b", "x"), {"body": "no id"}, record("d", "x")]}),
        // A bad record in the second half: the same error as one thread.
        json!({"Records": [record("a", "x"), record("b", "x"), record("c", "x"), {"messageId": 5}]}),
    ];
    for event in cases {
        assert_same(event.to_string().as_bytes());
    }
    let compact =
        json!({"Records": [record("a", "x"), record("b", "y"), {"body": "no id"}]}).to_string();
    let error = SqsRecords::from_slice_split(compact.as_bytes(), 0)
        .unwrap()
        .into_messages()
        .unwrap_err();
    assert!(error.to_string().starts_with("record 2 of 3"), "{error}");
    // Shapes the cut does not take fall back to one thread, same result.
    for other in [
        compact.replace(":[", ": [ "),
        compact.replace("]}", "],\"other\":1}"),
        format!("{compact}  \n"),
        format!("{compact}]}}"),
    ] {
        assert_same(other.as_bytes());
    }
}

#[test]
fn invalid_utf8_in_an_unknown_field_is_skipped_like_the_stock_decoder() {
    // Found by fuzzing: sqsrt's payload-wide UTF-8 check refused it, the
    // stock decoder skips unknown fields unread.
    let mut event = br#"{"Records":[{"messageId":"a","unknownKey":"x"#.to_vec();
    event.push(0xEC);
    event.extend_from_slice(br#"y"},{"messageId":"b","body":"},{\"x\":1}"}]}"#);
    assert!(serde_json::from_slice::<SqsEvent>(&event).is_ok());
    assert_same(&event);
}

#[test]
fn repeated_escaped_and_many_attribute_names_decode_the_same() {
    // The last value of a repeated name wins in both (the fast decoder keeps
    // attributes in one buffer, not a map), escaped names are unescaped,
    // and a record with hundreds of names takes the sorting path.
    assert_same(
        br#"{"Records":[{"messageId":"a","attributes":{"SenderId":"x","ApproximateReceiveCount":"2","SenderId":"y","\u0041":"escaped \"v\"","ApproximateReceiveCount":"5"}}]}"#,
    );
    let many: serde_json::Map<String, Value> = (0..600)
        .map(|i| (format!("name{}", i % 250), json!(i.to_string())))
        .collect();
    let text = format!(
        "{{\"Records\":[{{\"messageId\":\"a\",\"attributes\":{{{}}}}}]}}",
        (0..600)
            .map(|i| format!("\"name{}\":\"{i}\"", i % 250))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_same(text.as_bytes());
    let (messages, _) = SqsRecords::from_slice(text.as_bytes())
        .unwrap()
        .into_messages()
        .unwrap();
    assert_eq!(messages[0].attributes().len(), many.len());
    assert_eq!(messages[0].attributes().get("name3"), Some("503"));
}

#[test]
fn malformed_events_are_rejected_by_both() {
    for bad in [
        &b"not json"[..],
        b"{}",
        b"[]",
        b"{\"Records\": {}}",
        b"{\"Records\": [1]}",
        b"{\"Records\": [{\"messageId\": 7}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"body\": [\"x\"]}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"attributes\": {\"k\": 1}}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"messageAttributes\": {\"k\": {\"binaryValue\": \"%%%\"}}}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"messageId\": \"b\"}]}",
        b"{\"Records\": [], \"Records\": []}",
        b"{\"Records\": [{\"messageId\": \"a\"}]",
        // Found by `cargo fuzz` (fuzz/, event_decode): fields sqsrt does not
        // keep are still checked like the stock decoder checks them.
        b"{\"Records\": [{\"messageId\": \"a\", \"awsRegion\": \"us-ea\xc1\xc1st-1\"}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"awsRegion\": 5}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"eventSource\": {}}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"md5OfBody\": \"x\", \"md5OfBody\": \"y\"}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"md5OfMessageAttributes\": [\"x\"]}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"messageAttributes\": {\"k\": {\"stringListValues\": [], \"stringListValues\": []}}}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"messageAttributes\": {\"k\": {\"binaryListValues\": [\"%%%\"]}}}]}",
        b"{\"Records\": [{\"messageId\": \"a\", \"messageAttributes\": {\"k\": {\"stringListValues\": [1]}}}]}",
    ] {
        assert!(serde_json::from_slice::<SqsEvent>(bad).is_err(), "stock accepted {}", String::from_utf8_lossy(bad));
        assert!(
            SqsRecords::from_slice(bad).is_err(),
            "fast accepted {}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn events_and_records_must_be_objects_unlike_serdes_array_form() {
    // serde's derived structs also accept an array of field values; the stock
    // decoder takes these as events, sqsrt refuses them (found by fuzzing).
    for array_form in [&b"[[]]"[..], b"{\"Records\": [[\"id\"]]}"] {
        assert!(serde_json::from_slice::<SqsEvent>(array_form).is_ok());
        let error = SqsRecords::from_slice(array_form).unwrap_err();
        assert!(
            error.to_string().contains("invalid type: sequence"),
            "{error}"
        );
    }
}

#[test]
fn a_missing_message_id_names_the_record_in_both() {
    let event = br#"{"Records":[{"messageId":"a"},{"body":"x"},{"messageId":""}]}"#;
    assert_same(event);
    let error = SqsRecords::from_slice(event)
        .unwrap()
        .into_messages()
        .unwrap_err();
    assert_eq!(
        error.to_string().split(" has").next(),
        Some("record 1 of 3")
    );
}

#[test]
fn a_malformed_event_names_the_path_and_the_problem() {
    let cases: [(&[u8], &str, &str); 5] = [
        (
            b"{\"Records\": [{\"messageId\": \"a\", \"body\": \"\xff\"}]}",
            "Records[0].body",
            "invalid unicode",
        ),
        (
            b"{\"Records\": [{\"messageId\": \"a\", \"body\": \"\\ud800\"}]}",
            "Records[0].body",
            "escape",
        ),
        (
            b"{\"Records\": [{\"messageId\": \"a\"}, {\"messageId\": 7}]}",
            "Records[1].messageId",
            "invalid type: integer",
        ),
        (
            b"{\"Records\": [{\"messageId\": \"a\"}]} trailing",
            ".",
            "trailing characters",
        ),
        (b"hello", ".", "expected"),
    ];
    for (bytes, path, reason) in cases {
        match SqsRecords::from_slice(bytes) {
            Err(EventError::Malformed { path: p, reason: r }) => {
                assert_eq!(p, path, "{r}");
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }
}

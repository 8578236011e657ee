use super::json::push_json_str;
use super::timestamp::push_timestamp;
use super::*;

#[test]
fn flag_beats_rust_log_beats_lambda_level() {
    assert_eq!(
        resolve_filter(Some("debug"), Some("warn"), Some("ERROR")),
        "debug"
    );
    assert_eq!(resolve_filter(None, Some("warn"), Some("ERROR")), "warn");
    assert_eq!(resolve_filter(None, None, Some("DEBUG")), "debug");
    assert_eq!(resolve_filter(None, None, Some("FATAL")), "error");
    assert_eq!(resolve_filter(None, None, Some("bogus")), "info");
    assert_eq!(resolve_filter(None, None, None), "info");
}

fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = std::sync::Arc::clone(&buffer);
    let subscriber = tracing_subscriber::registry().with(JsonLines {
        write: move |line: &[u8]| sink.lock().unwrap().extend_from_slice(line),
    });
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    text.lines()
        .map(|line| {
            assert_eq!(
                line.matches("\"message_id\":").count(),
                usize::from(line.contains("message_id")),
                "no duplicate keys: {line}"
            );
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .collect()
}

#[test]
fn lines_are_json_objects_with_span_fields_at_the_top_level() {
    let tricky =
        "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} unicode \u{e9}\u{1f980}";
    let lines = capture(|| {
        let span =
            tracing::info_span!("invocation", request_id = "req-1", message_id = "from-span");
        let _entered = span.enter();
        tracing::info!(message_id = "m-1", outcome = "success", n = -3_i64, big = u64::MAX, ok = true, ratio = 0.5, nan = f64::NAN, text = tricky, debug = ?tricky, "Message {} processed.", "one");
        tracing::warn!("No fields.");
    });
    assert_eq!(lines.len(), 2);
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], module_path!());
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(line["message"], "Message one processed.");
    assert_eq!(line["request_id"], "req-1");
    assert_eq!(line["message_id"], "m-1", "the event's own field wins");
    assert_eq!(line["outcome"], "success");
    assert_eq!(line["n"], -3);
    assert_eq!(line["big"], u64::MAX);
    assert_eq!(line["ok"], true);
    assert_eq!(line["ratio"], 0.5);
    assert_eq!(line["nan"], "NaN");
    assert_eq!(line["text"], tricky);
    assert_eq!(line["debug"], format!("{tricky:?}"));
    assert_eq!(lines[1]["message"], "No fields.");
    assert_eq!(lines[1]["request_id"], "req-1");
    assert_eq!(lines[1]["message_id"], "from-span");
}

#[test]
fn escaping_matches_serde_json() {
    let mut all_controls = String::new();
    for c in 0u8..0x20 {
        all_controls.push(char::from(c));
    }
    for value in [
        "",
        "plain",
        all_controls.as_str(),
        "\"\\\"",
        "\u{7f}\u{80}\u{2028}\u{ffff}",
    ] {
        let mut out = String::new();
        push_json_str(&mut out, value);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, value);
    }
    // Around the eight-byte words of the fast scan: an escape at every
    // position from 0 to 40, in strings of every length up to 48.
    for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', '\u{e9}', 'x'] {
        for at in 0..=40 {
            for tail in [0, 1, 7, 8] {
                let value = format!("{}{special}{}", "a".repeat(at), "b".repeat(tail));
                let mut out = String::new();
                push_json_str(&mut out, &value);
                let back: String =
                    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
                assert_eq!(back, value);
            }
        }
    }
}

#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    use std::time::{Duration, UNIX_EPOCH};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    for (secs, micros, want) in [
        (0, 0, "1970-01-01T00:00:00.000000Z"),
        (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
        (4_107_542_400, 999_999, "2100-03-01T00:00:00.999999Z"),
        (1_795_000_000, 120_000, "2026-11-18T11:06:40.120000Z"),
        (253_402_300_799, 1, "9999-12-31T23:59:59.000001Z"),
    ] {
        // Twice: the second call reuses the cached second.
        for _ in 0..2 {
            let mut out = String::new();
            push_timestamp(
                &mut out,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            assert_eq!(out, want);
        }
    }
    // The same text as tracing-subscriber's clock (retried if a second
    // boundary falls between the two reads).
    let same_second = (0..5).any(|_| {
        let (mut ours, mut theirs) = (String::new(), String::new());
        push_timestamp(&mut ours, std::time::SystemTime::now());
        let _ = SystemTime.format_time(&mut Writer::new(&mut theirs));
        ours[..20] == theirs[..20]
    });
    assert!(same_second);
}

#[test]
fn lines_in_a_log_batch_span_are_written_together_when_it_exits() {
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = std::sync::Arc::clone(&writes);
    let subscriber = tracing_subscriber::registry().with(JsonLines {
        write: move |bytes: &[u8]| sink.lock().unwrap().push(bytes.to_vec()),
    });
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("before");
        tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN).in_scope(|| {
            for i in 0..3 {
                tracing::info!(i, "inside");
            }
            tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN)
                .in_scope(|| tracing::info!("nested"));
        });
        tracing::info!("after");
    });
    let writes = writes.lock().unwrap();
    let lines: Vec<usize> = writes
        .iter()
        .map(|w| w.split(|b| *b == b'\n').count() - 1)
        .collect();
    assert_eq!(
        lines,
        [1, 4, 1],
        "one write for the batch, one per line outside it"
    );
    let batch = String::from_utf8(writes[1].clone()).unwrap();
    assert!(
        batch.contains("\"i\":2") && batch.ends_with("nested\"}\n"),
        "{batch}"
    );
}

#[test]
fn lines_in_a_log_batch_carry_their_scopes_fields_like_any_other() {
    // Inside a batch the scope's fields are rendered once, when it is
    // entered; what each line shows must not change.
    let lines = capture(|| {
        let invocation = tracing::info_span!(
            "invocation",
            request_id = "req-1",
            message_id = "from-span",
            later = tracing::field::Empty
        );
        let _entered = invocation.enter();
        tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN).in_scope(|| {
            tracing::info!(message_id = "m-1", "own id");
            tracing::info!("span id");
            invocation.record("later", "set");
            tracing::info!("after record");
            tracing::info_span!("child", child = 1).in_scope(|| tracing::info!("in child"));
            tracing::info!(parent: None, "no parent");
            tracing::info!("last");
        });
    });
    let by_message = |m: &str| {
        lines
            .iter()
            .find(|l| l["message"] == m)
            .unwrap_or_else(|| panic!("no line {m}"))
    };
    assert_eq!(by_message("own id")["message_id"], "m-1");
    assert_eq!(by_message("own id")["request_id"], "req-1");
    assert_eq!(by_message("span id")["message_id"], "from-span");
    assert!(by_message("span id").get("later").is_none());
    assert_eq!(by_message("after record")["later"], "set");
    assert_eq!(by_message("in child")["child"], 1);
    assert_eq!(by_message("in child")["request_id"], "req-1");
    assert!(by_message("no parent").get("request_id").is_none());
    assert_eq!(by_message("last")["later"], "set");
    assert_eq!(lines.len(), 6);
}

#[test]
fn invalid_filter_is_named() {
    assert!(init("sqsrt=lots").unwrap_err().contains("sqsrt=lots"));
}

/// Every write of `f` under a JSON-lines subscriber with `filter`, with
/// sqsrt's outcome-line writer when `writer` (its writes marked with a
/// leading `W`).
fn writes_of(filter: &str, writer: bool, f: impl FnOnce()) -> Vec<String> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (sink, sink2) = (std::sync::Arc::clone(&seen), std::sync::Arc::clone(&seen));
    let write = move |bytes: &[u8]| {
        sink.lock()
            .unwrap()
            .push(String::from_utf8(bytes.to_vec()).unwrap());
    };
    let filter: Targets = filter.parse().unwrap();
    let base = tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines { write });
    if writer {
        let subscriber = base.with(outcome::writer(move |bytes: &[u8]| {
            sink2
                .lock()
                .unwrap()
                .push(format!("W{}", String::from_utf8(bytes.to_vec()).unwrap()));
        }));
        tracing::subscriber::with_default(subscriber, f);
    } else {
        tracing::subscriber::with_default(base, f);
    }
    seen.lock().unwrap().clone()
}

/// `"timestamp":"..."` emptied, lines sorted (a split batch's halves are
/// written in either order).
fn without_timestamps(writes: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = writes
        .iter()
        .map(|w| w.strip_prefix('W').unwrap_or(w))
        .collect::<String>()
        .lines()
        .map(|line| {
            let (head, rest) = line.split_once("\"timestamp\":\"").unwrap();
            let (_, tail) = rest.split_once('"').unwrap();
            format!("{head}\"timestamp\":\"\"{tail}")
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_outcome_line_writer_writes_the_bytes_of_the_tracing_events() {
    use sqsrt_lambda::OutcomeLine;
    use sqsrt_lambda::outcome_lines::log_outcome_lines;
    let line = |id, outcome, duration_ms, reason| OutcomeLine {
        message_id: id,
        outcome,
        receive_count: 3,
        duration_ms,
        reason,
        listed: reason.is_some(),
        dead_lettered: outcome == "permanent",
    };
    let tricky = "quote \" newline \n nul \u{0} unicode \u{e9}\u{1f980}";
    let lines = [
        line("m-1", "success", Some(12), None),
        line("m-\"2\"", "retry", Some(u64::MAX), Some(tricky)),
        line("m-3", "permanent", Some(0), Some("bad order")),
        line("m-4", "skipped", None, Some("deadline")),
        line(tricky, "success", None, None),
    ];
    let invocation = || {
        // Span fields as Lambda's runtime and users add them; `reason` and
        // `message_id` collide with the lines' own fields (theirs win).
        let span = tracing::info_span!(
            "invocation",
            request_id = "req-1",
            reason = "from-span",
            message_id = "from-span",
            xray = tricky
        );
        span.in_scope(|| {
            tracing::info_span!("inner", depth = 2).in_scope(|| {
                log_outcome_lines(&lines, false);
                log_outcome_lines(&lines, true);
            });
        });
    };
    let events = writes_of("info", false, invocation);
    let rendered = writes_of("info", true, invocation);
    assert_eq!(events.concat().lines().count(), 10);
    assert_eq!(without_timestamps(&rendered), without_timestamps(&events));
    // The writer wrote every line of its run, and a write per call (the
    // helper thread's half apart), not per line.
    assert!(rendered.iter().all(|w| w.starts_with('W')), "{rendered:?}");
    assert!(!events.iter().any(|w| w.starts_with('W')));
    assert_eq!(rendered.len(), 3, "{rendered:?}");
    // The success line has the span's `reason`, the failures their own.
    let text = events.concat();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["message"], "Message processed.");
    assert_eq!(first["target"], sqsrt_lambda::OUTCOME_LINES_TARGET);
    assert_eq!(first["reason"], "from-span");
    assert_eq!(first["message_id"], "m-1");
    assert_eq!(first["depth"], 2);

    // Off with their target, whichever path.
    for writer in [false, true] {
        let off = writes_of("info,sqsrt_lambda::outcome_lines=warn", writer, invocation);
        assert!(off.is_empty(), "{off:?}");
    }
}

#[test]
fn outcome_lines_outside_any_span_have_no_span_fields() {
    use sqsrt_lambda::OutcomeLine;
    use sqsrt_lambda::outcome_lines::log_outcome_lines;
    let lines = [OutcomeLine {
        message_id: "m-1",
        outcome: "success",
        receive_count: 1,
        duration_ms: Some(1),
        reason: None,
        listed: false,
        dead_lettered: false,
    }];
    let log = || log_outcome_lines(&lines, false);
    let events = writes_of("info", false, log);
    let rendered = writes_of("info", true, log);
    assert_eq!(without_timestamps(&rendered), without_timestamps(&events));
    assert!(rendered[0].starts_with('W'));
    assert_eq!(events.len(), 1);
}

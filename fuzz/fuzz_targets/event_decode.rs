//! Lambda event bytes through sqsrt's decoder (`SqsRecords`) and the stock
//! path (`aws_lambda_events::SqsEvent` + `into_messages`): neither may panic,
//! and they must agree (same messages and metas, or both refuse), and so
//! must sqsrt's two-thread path for large events. One
//! difference is intended: serde's derived structs accept an array of field
//! values (`[[]]` is an empty `SqsEvent` to the stock decoder); sqsrt refuses
//! an event or record that is not an object.
#![no_main]

use aws_lambda_events::event::sqs::SqsEvent;
use libfuzzer_sys::fuzz_target;
use sqsrt_lambda::SqsRecords;
use sqsrt_lambda::stock::into_messages;

fuzz_target!(|bytes: &[u8]| {
    let stock = serde_json::from_slice::<SqsEvent>(bytes).map(into_messages);
    let fast = SqsRecords::from_slice(bytes).map(SqsRecords::into_messages);
    // The two-thread path (taken by compact `{"Records":[...]}` events) must
    // agree with the one-thread decoder.
    let split = SqsRecords::from_slice_split(bytes, 0).map(SqsRecords::into_messages);
    assert_eq!(fast.as_ref().ok(), split.as_ref().ok(), "{}", String::from_utf8_lossy(bytes));
    assert_eq!(fast.is_err(), split.is_err());
    match (stock, fast) {
        (Ok(stock), Ok(fast)) => assert_eq!(stock, fast, "{}", String::from_utf8_lossy(bytes)),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(fast)) if fast.to_string().contains("invalid type: sequence") => {}
        (stock, fast) => panic!(
            "decoders disagree on {}:\nstock {stock:?}\nfast {fast:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
});

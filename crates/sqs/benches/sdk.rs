//! What aws-sdk-sqs itself costs per call, with the network taken out: the
//! worker's two calls per message (a `ReceiveMessage` of ten and a
//! `DeleteMessageBatch` of ten) through `sqsrt_sqs::SqsClient`, built like
//! the worker's client, against an HTTP connector that answers in-process
//! with SQS-shaped JSON. Each call is still built, signed (Signature
//! Version 4), serialized, run through the SDK's interceptors and retry
//! machinery, and its answer deserialized: the CPU the worker cannot avoid
//! while it uses the SDK. Divided by ten, a floor under the worker's CPU per
//! message (the socket, wake-ups, the handler and logging come on top), and
//! a low one: here the calls run back to back on warm caches. The allocator
//! is the binary's.

use std::fmt::Write as _;
use std::hint::black_box;

use aws_sdk_sqs::config::http::{HttpRequest, HttpResponse};
use aws_sdk_sqs::config::{Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_types::body::SdkBody;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sqsrt_sqs::{ReceiveRequest, SqsClient, WorkerQueue};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/bench";

/// A receipt handle of the length SQS gives (about 180 characters).
fn receipt(i: usize) -> String {
    let mut r = format!("AQEB{i:04}");
    while r.len() < 180 {
        r.push_str("x7Vb2kQ9pLm4Zt8R");
    }
    r.truncate(180);
    r
}

/// A `ReceiveMessage` answer with ten messages and their system attributes.
fn receive_body() -> String {
    let mut body = String::from(r#"{"Messages":["#);
    for i in 0..10 {
        if i > 0 {
            body.push(',');
        }
        write!(
            body,
            r#"{{"MessageId":"3f1c2b7e-8d4a-4e6f-9a1b-{i:012}","ReceiptHandle":"{}","MD5OfBody":"0d6a1b0c9e8f7a6b5c4d3e2f1a0b9c8d","Body":"{{\"order\":{i},\"action\":\"ship\",\"items\":[1,2,3]}}","Attributes":{{"SenderId":"AIDAEXAMPLE","SentTimestamp":"1763900000000","ApproximateReceiveCount":"1","ApproximateFirstReceiveTimestamp":"1763900000100"}}}}"#,
            receipt(i)
        )
        .expect("writing to a String");
    }
    body.push_str("]}");
    body
}

fn delete_body() -> String {
    let ids: Vec<String> = (0..10).map(|i| format!(r#"{{"Id":"{i}"}}"#)).collect();
    format!(r#"{{"Successful":[{}],"Failed":[]}}"#, ids.join(","))
}

/// Answers every request at once with the canned body its `X-Amz-Target`
/// names.
#[derive(Debug)]
struct Canned {
    receive: String,
    delete: String,
}

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = match request.headers().get("x-amz-target") {
            Some("AmazonSQS.ReceiveMessage") => self.receive.clone(),
            Some("AmazonSQS.DeleteMessageBatch") => self.delete.clone(),
            other => panic!("the bench makes no {other:?} call"),
        };
        let mut response = HttpResponse::new(
            200.try_into().expect("200 is a status"),
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        response
            .headers_mut()
            .insert("x-amzn-requestid", "6a1b0c9e-8f7a-4b5c-8d3e-2f1a0b9c8d7e");
        HttpConnectorFuture::ready(Ok(response))
    }
}

fn client(rt: &tokio::runtime::Runtime) -> SqsClient {
    let connector = SharedHttpConnector::new(Canned {
        receive: receive_body(),
        delete: delete_body(),
    });
    let config = rt.block_on(
        sqsrt_sqs::config_loader()
            .http_client(http_client_fn(move |_, _| connector.clone()))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDBENCH", "secret", None, None, "bench"))
            .load(),
    );
    SqsClient::new(aws_sdk_sqs::Client::new(&config))
}

fn sdk(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime builds on this machine");
    let client = client(&rt);
    let receipts: Vec<(String, String)> = (0..10).map(|i| (i.to_string(), receipt(i))).collect();
    // Proves the canned answers decode as the worker needs them.
    let received = rt
        .block_on(client.receive(QUEUE_URL, request()))
        .expect("the canned receive decodes");
    assert_eq!(received.messages.len(), 10, "{:?}", received.malformed);
    let refused = rt
        .block_on(client.delete_batch(QUEUE_URL, receipts.clone()))
        .expect("the canned delete decodes");
    assert!(refused.is_empty());

    let mut group = c.benchmark_group("aws-sdk-sqs call, no network");
    group.throughput(Throughput::Elements(10));
    group.bench_function("ReceiveMessage of 10", |b| {
        b.iter(|| black_box(rt.block_on(client.receive(QUEUE_URL, request()))));
    });
    group.bench_function("DeleteMessageBatch of 10", |b| {
        b.iter(|| black_box(rt.block_on(client.delete_batch(QUEUE_URL, receipts.clone()))));
    });
    group.finish();
}

fn request() -> ReceiveRequest {
    ReceiveRequest {
        max_messages: 10,
        wait_secs: 20,
        visibility_timeout_secs: None,
        attempt_id: None,
    }
}

criterion_group!(benches, sdk);
criterion_main!(benches);

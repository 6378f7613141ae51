//! Malformed input against the running server: arbitrary push batches (random JSON shapes,
//! wrong types, huge strings, unicode edge cases, deep nesting, signed operations with garbage
//! payloads) and arbitrary pull cursors. The answer is always a 4xx with our error body or a 200
//! with a result per operation: never a 5xx, never a hang.

use std::time::Duration;

use gridline_testkit::{new_case, Phone, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Map, Value};

/// Strings that have broken parsers before.
fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("\u{feff}bom".to_owned()),
        Just("\u{202e}evil\u{202c}".to_owned()),
        Just("e\u{301}\u{301}\u{301}".to_owned()),
        Just("🏙️👷‍♀️🧾".to_owned()),
        Just("\u{10ffff}".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("'; DROP TABLE cases; --".to_owned()),
        Just("2026-13-45T25:61:61Z".to_owned()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        Just("event:0102".to_owned()),
        (0usize..200_000).prop_map(|n| "x".repeat(n)),
        any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
    ]
}

/// Field names the server looks for, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "protocol",
            "device_id",
            "device_time",
            "operations",
            "acked_through",
            "op",
            "sig",
            "op_id",
            "seq",
            "prev",
            "type",
            "queued_at",
            "payload",
            "case_id",
            "zone_id",
            "category_code",
            "location",
            "lat",
            "lon",
            "photos",
            "sha256",
            "base_version",
            "changes",
            "action",
        ])
        .prop_map(str::to_owned),
        edge_string().prop_map(|s| s.chars().take(40).collect()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        edge_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// What one case sends.
#[derive(Debug, Clone)]
enum Input {
    /// Any JSON as the whole body.
    Body(Value),
    /// Raw bytes with a JSON content type (invalid UTF-8, lone surrogates, deep nesting).
    Raw(Vec<u8>),
    /// A well-formed envelope around arbitrary operations.
    Operations(Value),
    /// Operations signed by the phone, so they pass the signature check and reach payload
    /// decoding: `(type, payload)` pairs, some a real case with one field replaced.
    Signed(Vec<(String, Value)>),
    /// An arbitrary pull cursor.
    Cursor(String),
}

fn op_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "case.create@1",
            "case.edit@1",
            "case.comment@1",
            "case.transition@1",
            "round.start@1",
            "round.finish@1",
            "case.create@2",
            "case.create",
            "",
        ])
        .prop_map(str::to_owned),
        edge_string(),
    ]
}

fn mutated_case() -> impl Strategy<Value = Value> {
    (key(), json_value()).prop_map(|(k, v)| {
        let (_, mut payload) = new_case(uuid::Uuid::now_v7(), 0, "event:0102");
        if let Some(obj) = payload.as_object_mut() {
            obj.insert(k, v);
        }
        payload
    })
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        json_value().prop_map(Input::Body),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            Just(b"{\"protocol\": 1, \"device_id\": \"\\ud800\"}".to_vec()),
            Just(
                b"{\"protocol\": 1, \"operations\": [{\"op\": \"\xff\xfe\", \"sig\": \"\"}]}"
                    .to_vec()
            ),
            (1usize..200_000).prop_map(|n| {
                let mut v = b"{\"protocol\":1,\"operations\":".to_vec();
                v.extend(std::iter::repeat_n(b'[', n));
                v.extend(std::iter::repeat_n(b']', n));
                v.push(b'}');
                v
            }),
        ]
        .prop_map(Input::Raw),
        json_value().prop_map(Input::Operations),
        prop::collection::vec((op_type(), prop_oneof![json_value(), mutated_case()]), 1..4)
            .prop_map(Input::Signed),
        // URLs beyond 64 KiB cannot even be built by the client; 16 KiB is plenty.
        edge_string().prop_map(|s| Input::Cursor(s.chars().take(16 * 1024).collect())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_push_batches_and_cursors_never_get_a_server_error() {
    let app = TestApp::builder()
        .config(|c| c.limits.requests_per_minute = 0)
        .spawn()
        .await
        .unwrap();
    let phone = std::cell::RefCell::new(Phone::enrol(&app, "inspector1").await);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let cases = std::env::var("GRIDLINE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let handle = tokio::runtime::Handle::current();
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u64>::new());
    let result = tokio::task::block_in_place(|| {
        runner.run(&input(), |input| {
            let (status, body) =
                handle.block_on(send(&app, &http, &mut phone.borrow_mut(), &input));
            *statuses.borrow_mut().entry(status).or_default() += 1;
            prop_assert!(status < 500, "{status}: {body}");
            if status >= 400 {
                prop_assert!(
                    body["code"].is_string() && body["message"].is_string(),
                    "{status} without our error body: {body}"
                );
            } else {
                prop_assert_eq!(status, 200);
                if let Input::Cursor(_) = input {
                    prop_assert!(body["changes"].is_array(), "{body}");
                } else {
                    prop_assert!(body["results"].is_array(), "{body}");
                }
            }
            Ok(())
        })
    });
    println!(
        "malformed input: {cases} cases, statuses {:?}",
        statuses.borrow()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The start of an input's debug text: some inputs are hundreds of kilobytes.
fn short(input: &Input) -> String {
    let text = format!("{input:?}");
    let n = text.len();
    format!("{} ({n} bytes)", text.chars().take(200).collect::<String>())
}

/// Sends one input; returns the status and the body (`Null` if it was not JSON). A request
/// that does not answer within the client's timeout fails the test as a hang.
async fn send(
    app: &TestApp,
    http: &reqwest::Client,
    phone: &mut Phone,
    input: &Input,
) -> (u16, Value) {
    let push = app.url("/v1/sync/push");
    let envelope = |operations: Value| {
        let mut body = phone.push_body(&[]);
        body["operations"] = operations;
        body
    };
    let (seq, prev) = (phone.seq, phone.prev.clone());
    let req = match input {
        Input::Body(v) => http.post(&push).json(v),
        Input::Raw(bytes) => http
            .post(&push)
            .header("content-type", "application/json")
            .body(bytes.clone()),
        Input::Operations(v) => http.post(&push).json(&envelope(v.clone())),
        Input::Signed(ops) => {
            let signed: Vec<_> = ops.iter().map(|(t, p)| phone.op(t, p.clone())).collect();
            http.post(&push).json(&phone.push_body(&signed))
        }
        Input::Cursor(c) => http
            .get(app.url("/v1/sync/pull"))
            .query(&[("protocol", "1"), ("cursor", c.as_str())]),
    };
    let resp = req
        .bearer_auth(&phone.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer (hang or crash) for {}: {e:?}", short(input)));
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    // Keep the phone's chain in step with what the server acknowledged.
    if status == 200 && body["receipt"].is_object() {
        phone.seq = body["acked_through"].as_u64().unwrap_or(seq);
        phone.prev = body["receipt"]["last_hash"]
            .as_str()
            .unwrap_or(&prev)
            .to_owned();
    } else {
        phone.seq = seq;
        phone.prev = prev;
    }
    (status, body)
}

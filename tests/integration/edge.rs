//! The HTTP edge: one error shape, limits, ids, health, metrics and the OpenAPI document.

use gridline_testkit::{Db, TestApp};
use reqwest::StatusCode;
use serde_json::json;

async fn app() -> TestApp {
    TestApp::on(Db::Sqlite).await.expect("app")
}

#[tokio::test]
async fn bad_json_is_422_with_the_field_path() {
    let app = app().await;
    let admin = app.login("admin").await;
    let (status, body) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "x", "starts_at": 5, "ends_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(body["details"]["path"], "$.starts_at");

    let (status, body) = app
        .post("/v1/rulebooks", Some(&admin), &json!({"name": "x", "effective_from": "2026-01-01T00:00:00Z", "rules": [{"code": "a", "description": "d", "points": "two", "sources": []}]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["path"], "$.rules[0].points");

    let (status, body) = app
        .post_raw(
            "/v1/auth/login",
            None,
            "application/json",
            b"{\"username\": ".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "malformed_body");

    let (status, body) = app
        .post_raw("/v1/auth/login", None, "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "malformed_body");

    // Unknown fields are named, not ignored.
    let (status, body) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "x", "starts": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"].as_str().unwrap().contains("starts"),
        "{body}"
    );

    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let resp = app
        .http
        .put(app.url("/v1/taxonomy"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    let (status, body) = gridline_testkit::into_json(resp).await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::PAYLOAD_TOO_LARGE,
        "{status} {body}"
    );
}

#[tokio::test]
async fn unknown_routes_methods_and_oversized_bodies_get_the_error_body() {
    let app = app().await;
    let (status, body) = app.get("/v1/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");

    let resp = app.http.delete(app.url("/v1/zones")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let (_, body) = gridline_testkit::into_json(resp).await;
    assert_eq!(body["code"], "method_not_allowed");

    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, body) = app
        .post_raw("/v1/auth/login", None, "application/json", big)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");

    let (status, body) = app
        .get("/v1/zones/not-a-uuid", Some(&app.login("admin").await))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn requests_carry_ids_and_are_counted() {
    let app = app().await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let id = resp
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36);
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "abc-123",
        "a caller's id is kept"
    );

    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ok", "database": "ok", "blob_store": "ok"})
    );

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gridline_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/healthz\""));
}

#[tokio::test]
async fn readyz_reports_a_database_outage() {
    let app = app().await;
    app.state.db.close().await;
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["database"], "unavailable");
    // And requests needing the database answer 503 with Retry-After, not 500.
    let resp = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": "admin", "password": "whatever1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
}

#[test]
fn committed_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let generated = gridline_testkit::gridline_server::routes::openapi_yaml();
    if std::env::var("GRIDLINE_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.yaml is stale: regenerate it with `cargo run -p gridline-server -- print-openapi > openapi.yaml` \
         (or GRIDLINE_UPDATE_OPENAPI=1 cargo test openapi) and commit it"
    );
}

/// OpenAPI requires each `operationId` to be unique in the document; client generators (Kotlin,
/// Swift, TypeScript) name methods after them and fail or silently merge operations otherwise.
#[test]
fn every_operation_has_its_own_id() {
    let api = gridline_testkit::gridline_server::routes::openapi();
    let mut seen = std::collections::HashMap::new();
    for (path, item) in &api.paths.paths {
        let ops = [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
            ("options", &item.options),
            ("head", &item.head),
            ("patch", &item.patch),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let id = op.operation_id.clone().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            if let Some(first) = seen.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId `{id}` names both {first} and {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn docs_and_spec_are_served() {
    let app = app().await;
    let resp = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("<html") && html.to_lowercase().contains("scalar"),
        "{html}"
    );
    let (status, spec) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["paths"]["/v1/zones"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

/// Every `src` and `href` in an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            refs.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    refs
}

/// The docs work without the internet: the page names no other host, its scripts come from
/// this server (cacheable for good: their names carry their hash), and its policy allows
/// nothing else.
#[tokio::test]
async fn the_docs_page_loads_everything_from_this_server() {
    let app = app().await;
    let resp = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("http"), "no other host is allowed: {csp}");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("//"), "no absolute URL: {html}");
    let refs = references(&html);
    assert!(!refs.is_empty(), "{html}");
    for r in refs {
        assert!(r.starts_with('/'), "{r}");
        let resp = app.http.get(app.url(&r)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{r}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            resp.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(resp.bytes().await.unwrap().len() > 100_000, "{r}");
    }
    let (status, _) = app
        .get("/docs/assets/scalar.0000000000000000.js", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let app = app().await;
    let token = app.login("inspector1").await;
    let login = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": "inspector1", "password": gridline_testkit::gridline_server::demo::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    let requests = [
        app.http.get(app.url("/healthz")),
        app.http.get(app.url("/docs")),
        app.http.get(app.url("/openapi.json")),
        app.http.get(app.url("/v1/zones")),
        app.http.get(app.url("/v1/zones")).bearer_auth(&token),
        app.http.get(app.url("/v1/cases")).bearer_auth(&token),
        app.http.get(app.url("/v1/nothing-here")),
        app.http.delete(app.url("/v1/zones")),
    ];
    let mut responses = vec![login];
    for r in requests {
        responses.push(r.send().await.unwrap());
    }
    for resp in &responses {
        let h = resp.headers();
        let url = resp.url().path();
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(h["x-frame-options"], "DENY", "{url}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{url}"
        );
        if url.starts_with("/v1/") {
            assert_eq!(h["cache-control"], "no-store", "{url}");
        }
    }
}

#[test]
fn invalid_config_names_the_setting() {
    use gridline_testkit::gridline_server::config::Config;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gridline.toml");
    std::fs::write(&file, "[auth]\naccess_ttl_secs = 5\n").unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("auth.access_ttl_secs"), "{err}");
    std::fs::write(&file, "listen = \"not an address\"\n").unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("listen"), "{err}");
    std::fs::write(&file, "[blob]\nbackend = \"s3\"\n").unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("blob.s3.bucket"), "{err}");
    std::fs::write(&file, "typo_setting = 1\n").unwrap();
    let err = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("typo_setting"), "{err}");
    let err = Config::load(Some(&dir.path().join("missing.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn example_config_is_valid_and_complete() {
    use gridline_testkit::gridline_server::config::Config;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gridline.example.toml");
    let config = Config::load(Some(&path)).expect("the example config loads");
    assert_eq!(config.listen.port(), 8080);
}

/// A request refused before its body was read (here: rate limited) is answered with
/// `Connection: close`, because the server does not keep that connection: a client reusing
/// connections opens a new one and every request of a long loop gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_client_keeps_working_through_refusals_of_unread_bodies() {
    let app = TestApp::builder()
        .config(|c| {
            c.limits.requests_per_minute = 1;
            c.limits.request_burst = 1;
        })
        .spawn()
        .await
        .unwrap();
    // Enrolment takes the user's one request; every push after it is refused.
    let phone = gridline_testkit::Phone::enrol(&app, "inspector1").await;
    let body = serde_json::to_vec(&phone.push_body(&[])).unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..300 {
        let resp = client
            .post(app.url("/v1/sync/push"))
            .bearer_auth(&phone.token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} got no answer: {e}"));
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "request {i}");
        assert_eq!(
            resp.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "request {i}"
        );
    }
}

/// The field demo's walk-through uses photos a reader has: every sample it names is shipped in
/// `docs/samples` and is a JPEG, so `gridline-field capture --photo` (and `checklist --photo`)
/// works as written.
#[test]
fn the_field_demo_names_only_sample_photos_that_are_shipped() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let text = std::fs::read_to_string(docs.join("field-demo.md")).unwrap();
    let named: Vec<&str> = text
        .split("--photo ")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(!named.is_empty(), "the walk-through captures photos");
    for arg in named {
        // A checklist's photo is `ITEM=FILE`.
        let file = arg.split_once('=').map_or(arg, |(_, file)| file);
        let name = file
            .trim_matches('"')
            .strip_prefix("$SAMPLES/")
            .unwrap_or_else(|| panic!("{arg}: name a photo from $SAMPLES (docs/samples)"));
        let bytes = std::fs::read(docs.join("samples").join(name))
            .unwrap_or_else(|e| panic!("docs/samples/{name}: {e}"));
        assert!(
            bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            "{name} is not a JPEG"
        );
    }
}

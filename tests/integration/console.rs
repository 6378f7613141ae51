//! The supervisors' console in a real browser: Debian's headless Chromium driven through its
//! WebDriver (chromedriver) with fantoccini. Each step saves a screenshot under
//! `target/tmp/console-screenshots/` (CI keeps them as artifacts). Without Chromium the tests
//! skip with the reason (and fail with `GRIDLINE_REQUIRE_SERVICES=1`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use gridline_server::i18n::Lang;
use gridline_testkit::{skip_or_fail, Db, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A chromedriver of our own on a free port, stopped with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_owned()));
    path.exists().then_some(path)
}

async fn driver() -> Option<Driver> {
    let Some(chromedriver) = binary("GRIDLINE_CHROMEDRIVER", "/usr/bin/chromedriver") else {
        skip_or_fail("chromedriver is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let stdout = child.stdout.take().expect("stdout");
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("started successfully") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(started, "chromedriver did not start");
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver) -> Client {
    let chromium = binary("GRIDLINE_CHROMIUM", "/usr/bin/chromium").expect("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,768", "--lang=zh-CN"],
            // What a browser on a Chinese office PC asks for.
            "prefs": {"intl.accept_languages": "zh-CN,zh"},
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves a screenshot of the page and checks it with axe-core: no serious or critical
/// accessibility violation.
async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    accessible(b, name).await;
}

/// axe-core's script (`GRIDLINE_AXE_JS`: `npm install axe-core`, as `.ci/run` does).
fn axe_script() -> Option<String> {
    let path = std::env::var("GRIDLINE_AXE_JS").ok()?;
    std::fs::read_to_string(path).ok()
}

async fn accessible(b: &Client, name: &str) {
    let Some(axe) = axe_script() else {
        skip_or_fail("GRIDLINE_AXE_JS names no axe-core script (npm install axe-core)");
        return;
    };
    b.execute(&axe, vec![]).await.expect("inject axe-core");
    let found = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' +
                   v.nodes.map(n => n.target.join(' ')).join(', '))));",
            vec![],
        )
        .await
        .expect("run axe-core");
    let violations: Vec<String> = serde_json::from_value(found).unwrap();
    assert!(violations.is_empty(), "{name}: {violations:#?}");
}

/// Waits (up to 10 s, polling) until the page's text contains `needle`.
async fn until_text(b: &Client, needle: &str) {
    let found = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&format!(
            "//*[contains(normalize-space(.), '{needle}')]"
        )))
        .await;
    if found.is_err() {
        let source = b.source().await.unwrap_or_default();
        panic!("no {needle:?} on the page: {source}");
    }
}

/// Types a name and password into the sign-in form on the page and sends it.
async fn fill_sign_in(b: &Client, username: &str, password: &str) {
    for (field, text) in [("#username", username), ("#password", password)] {
        let input = b
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(field))
            .await
            .unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_in(b: &Client, app: &TestApp, username: &str) {
    b.goto(&app.url("/console")).await.unwrap();
    fill_sign_in(b, username, gridline_server::demo::DEMO_PASSWORD).await;
}

/// A supervisor signs in (in Chinese, the site's language), triages the queue by keyboard,
/// opens a case with its photos, switches to English, and signs out; a request from another
/// origin, or without the session's token, changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_triages_the_queue_in_a_browser() {
    let Some(driver) = driver().await else {
        return;
    };
    // The site's settings as an office runs it, but with one supervisor at the desk (four
    // eyes off) so that one browser session proposes and approves.
    let app = TestApp::builder()
        .config(|c| {
            c.site.language = Lang::ZhCn;
            c.deductions.four_eyes = false;
            c.deductions.require_photo_views = true;
            c.photos.worker_poll_secs = 1;
        })
        .spawn()
        .await
        .unwrap();
    // Two reports waiting, each with a real photo uploaded.
    let mut phone = gridline_testkit::Phone::enrol(&app, "inspector1").await;
    let mut shas = Vec::new();
    let mut ids = Vec::new();
    for seed in [1, 2] {
        let photo = gridline_testkit::noisy_jpeg(320, 240, seed);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&photo));
        let (id, mut payload) = gridline_testkit::new_case(app.zone("Z01"), 0, "event:0102");
        payload["photos"][0]["sha256"] = json!(sha);
        payload["photos"][0]["size"] = json!(photo.len());
        let op = phone.op("case.create@1", payload);
        let (status, body) = phone.push(&app, &[op]).await;
        assert_eq!(body["results"][0]["status"], "applied", "{status} {body}");
        let resp = app
            .http
            .put(app.url(&format!("/v1/photos/{sha}")))
            .bearer_auth(&phone.token)
            .body(photo)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        shas.push(sha);
        ids.push(id);
    }
    let (first, second) = (ids[0], ids[1]);
    let b = browser(&driver).await;

    // Not signed in: the sign-in page, in Chinese.
    b.goto(&app.url("/console/queue")).await.unwrap();
    until_text(&b, "用户名").await;
    shot(&b, "01-sign-in").await;
    // A wrong password says so and keeps the name.
    fill_sign_in(&b, "supervisor1", "wrong").await;
    until_text(&b, "用户名或密码错误").await;
    let kept = b.find(Locator::Css("#username")).await.unwrap();
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("supervisor1")
    );

    sign_in(&b, &app, "supervisor1").await;
    until_text(&b, "待审核案件").await;
    shot(&b, "02-overview").await;
    let cookie = b.get_named_cookie("gridline_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");

    // The queue: both reports; j moves down, f files the selected one in place.
    b.goto(&app.url("/console/queue")).await.unwrap();
    until_text(&b, "审核队列").await;
    let rows = b.find_all(Locator::Css("tr.queue-row")).await.unwrap();
    assert_eq!(rows.len(), 2);
    shot(&b, "03-queue").await;
    let body = b.find(Locator::Css("body")).await.unwrap();
    body.send_keys("j").await.unwrap();
    let selected = b.find(Locator::Css("tr.queue-row.selected")).await.unwrap();
    let selected_id = selected.attr("id").await.unwrap().unwrap();
    assert_eq!(
        selected_id,
        format!("case-{second}"),
        "j moved to the second case"
    );
    body.send_keys("f").await.unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&format!(
            "//tr[@id='case-{second}'][contains(., '已立案')]"
        )))
        .await
        .expect("the row shows the case filed");
    shot(&b, "04-filed-in-place").await;
    let (_, view) = app
        .get(
            &format!("/v1/cases/{second}"),
            Some(&app.login("admin").await),
        )
        .await;
    assert_eq!(view["state"], "filed");

    // Enter opens the selected case: its facts, photos and timeline.
    let body = b.find(Locator::Css("body")).await.unwrap();
    body.send_keys("\u{E007}").await.unwrap();
    until_text(&b, "处理经过").await;
    assert!(b
        .find(Locator::Css("img[src^='/console/photos/']"))
        .await
        .is_ok());
    shot(&b, "05-case").await;

    // Propose the deduction the rule for exposed garbage gives; approval waits until the
    // approver has opened the photo, and the server refuses it too.
    b.find(Locator::Css("#note"))
        .await
        .unwrap()
        .send_keys("垃圾满溢")
        .await
        .unwrap();
    b.find(Locator::Css("#propose"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "待审批的扣分建议").await;
    until_text(&b, "批准前须逐一打开查看每张证据照片").await;
    let approve = b.find(Locator::Css("#approve")).await.unwrap();
    assert_eq!(
        approve.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    shot(&b, "06-deduction-before-opening").await;
    let cookie = b.get_named_cookie("gridline_session").await.unwrap();
    let session = format!("gridline_session={}", cookie.value());
    let csrf = b
        .find(Locator::Css("meta[name=csrf-token]"))
        .await
        .unwrap()
        .attr("content")
        .await
        .unwrap()
        .unwrap();
    let action = b
        .find(Locator::XPath("//button[@id='approve']/.."))
        .await
        .unwrap()
        .attr("action")
        .await
        .unwrap()
        .unwrap();
    let http = reqwest::Client::new();
    let refused = http
        .post(app.url(&action))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "approval before the photo was opened"
    );
    // Open the photo (it opens in a tab of its own; here, in this one) and come back.
    let case_url = b.current_url().await.unwrap();
    b.goto(&app.url(&format!("/console/photos/{}/original", shas[1])))
        .await
        .unwrap();
    b.goto(case_url.as_str()).await.unwrap();
    let approve = b.find(Locator::Css("#approve")).await.unwrap();
    assert_eq!(
        approve.attr("disabled").await.unwrap(),
        None,
        "enabled once opened"
    );
    until_text(&b, "片区得分").await;
    approve.click().await.unwrap();
    until_text(&b, "已批准记入台账").await;
    shot(&b, "07-deduction-approved").await;
    let (_, ledger) = app.get("/v1/ledger", Some(&app.login("admin").await)).await;
    assert_eq!(ledger["items"][0]["evidence"], json!([shas[1]]));
    // The ranking on the overview has moved.
    b.goto(&app.url("/console")).await.unwrap();
    until_text(&b, "99.8").await;

    // The decisions page: nothing waits; a finding with no case can be proposed there.
    b.goto(&app.url("/console/decisions")).await.unwrap();
    until_text(&b, "无案件的扣分").await;
    shot(&b, "08-decisions").await;

    // The map: the zones, and the open cases as markers that open them.
    b.goto(&app.url("/console/map")).await.unwrap();
    until_text(&b, "片区与未办结案件").await;
    let markers = b.find_all(Locator::Css("svg.map a circle")).await.unwrap();
    assert_eq!(markers.len(), 2, "both open cases");
    shot(&b, "08-map").await;

    // The ledger: the chain verifies; the entry is reversed with a reason.
    b.goto(&app.url("/console/ledger")).await.unwrap();
    until_text(&b, "台账哈希链已校验").await;
    shot(&b, "09-ledger").await;
    b.find(Locator::Css("#why-1"))
        .await
        .unwrap()
        .send_keys("误报：垃圾桶属于相邻片区")
        .await
        .unwrap();
    b.find(Locator::XPath("//tr[@id='entry-1']//button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "已冲销").await;
    let (_, ledger) = app.get("/v1/ledger", Some(&app.login("admin").await)).await;
    assert_eq!(ledger["items"].as_array().unwrap().len(), 2, "{ledger}");

    // A period that has ended closes after its pre-checks; its ranking exports as XLSX.
    let (status, past) = app
        .post(
            "/v1/periods",
            Some(&app.login("admin").await),
            &json!({"code": "2020-01", "month": "2020-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{past}");
    b.goto(&app.url("/console/periods")).await.unwrap();
    until_text(&b, "周期已结束").await;
    until_text(&b, "没有待审批的扣分建议").await;
    shot(&b, "10-periods").await;
    b.find(Locator::Css("#close-2020-01"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//tr[td/a[text()='2020-01']][contains(., '已关闭')]",
        ))
        .await
        .expect("the period shows closed");
    let xlsx = http
        .get(app.url(&format!(
            "/console/exports/ranking.xlsx?period_id={}",
            past["id"].as_str().unwrap()
        )))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), StatusCode::OK);
    let bytes = xlsx.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.sheet_names()[0].clone();
    let rows: Vec<Vec<String>> = book
        .worksheet_range(&sheet)
        .unwrap()
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][0], "名次", "{rows:?}");
    assert_eq!(rows.len(), 9, "a header and eight zones");
    b.goto(case_url.as_str()).await.unwrap();

    // Another origin cannot act with the session: neither without the token nor with it.
    for (token, origin) in [
        ("", None),
        ("", Some("http://evil.example")),
        (csrf.as_str(), Some("http://evil.example")),
    ] {
        let mut req = http
            .post(app.url(&format!("/console/cases/{first}/transition")))
            .header("cookie", &session)
            .form(&[("action", "file"), ("base_version", "1"), ("csrf", token)]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{token:?} from {origin:?}"
        );
    }
    let (_, view) = app
        .get(
            &format!("/v1/cases/{first}"),
            Some(&app.login("admin").await),
        )
        .await;
    assert_eq!(view["state"], "reported", "nothing was done");

    // The language switch: English from now on.
    b.find(Locator::Css("a.lang"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "Timeline").await;
    shot(&b, "11-english").await;
    for (path, text, name) in [
        ("/console", "Cases awaiting review", "11-en-overview"),
        ("/console/queue?state=any", "Review queue", "11-en-queue"),
        (
            "/console/decisions",
            "A deduction with no case",
            "11-en-decisions",
        ),
        ("/console/map", "Zones and open cases", "11-en-map"),
        ("/console/ledger", "hash chain verifies", "11-en-ledger"),
        ("/console/periods", "Assessment periods", "11-en-periods"),
        ("/console/inbox", "Notices", "11-en-inbox"),
        ("/console/settings", "Quiet hours", "11-en-settings"),
    ] {
        b.goto(&app.url(path)).await.unwrap();
        until_text(&b, text).await;
        shot(&b, name).await;
    }

    // The session runs out while a row is being decided: the page says so and stays as it is.
    b.goto(&app.url("/console/queue")).await.unwrap();
    until_text(&b, "Review queue").await;
    sqlx::query("UPDATE console_sessions SET expires_at = 0")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let reason = b
        .find(Locator::Css(&format!("#reason-{first}")))
        .await
        .unwrap();
    reason.send_keys("half-written reason").await.unwrap();
    b.find(Locator::XPath(&format!(
        "//tr[@id='case-{first}']//button[@data-action='file']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    until_text(&b, "Your sign-in has expired").await;
    assert_eq!(
        reason.prop("value").await.unwrap().as_deref(),
        Some("half-written reason"),
        "what was typed stays"
    );
    shot(&b, "12-session-expired").await;
    sign_in(&b, &app, "supervisor1").await;
    until_text(&b, "Overview").await;

    // Sign out: the session ends, its cookie no longer opens a page.
    b.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "Sign in").await;
    shot(&b, "13-signed-out").await;
    let resp = http
        .get(app.url("/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(
        resp.url().path().starts_with("/console/login"),
        "{}",
        resp.url()
    );

    // An admin's pages, in English.
    sign_in(&b, &app, "admin").await;
    until_text(&b, "Overview").await;
    for (path, text, name) in [
        ("/console/admin/users", "New user", "14-admin-users"),
        ("/console/admin/devices", "Devices", "14-admin-devices"),
        ("/console/admin/roster", "New assignment", "14-admin-roster"),
        (
            "/console/admin/zones",
            "Zones and coefficients",
            "14-admin-zones",
        ),
        (
            "/console/admin/reference",
            "Rulebooks",
            "14-admin-reference",
        ),
        (
            "/console/admin/notifications?role=road_chief",
            "most generous",
            "14-admin-notifications",
        ),
        ("/console/intake", "Take a report in", "16-intake"),
    ] {
        b.goto(&app.url(path)).await.unwrap();
        until_text(&b, text).await;
        shot(&b, name).await;
    }

    // The same pages in Chinese, the site's language.
    b.goto(&app.url("/console/lang?set=zh-CN")).await.unwrap();
    for (path, text, name) in [
        ("/console/admin/users", "新建用户", "14-zh-admin-users"),
        ("/console/admin/roster", "新增任职", "14-zh-admin-roster"),
        (
            "/console/admin/zones",
            "片区与难度系数",
            "14-zh-admin-zones",
        ),
        (
            "/console/admin/reference",
            "考核细则",
            "14-zh-admin-reference",
        ),
        (
            "/console/admin/reference#new-rulebook",
            "发布新版本",
            "14-zh-admin-rulebook-editor",
        ),
        ("/console/inbox", "暂无通知", "14-zh-inbox"),
        ("/console/settings", "免打扰时段", "14-zh-settings"),
        (
            "/console/admin/notifications?role=zone_chief",
            "最及时",
            "14-zh-admin-notifications",
        ),
    ] {
        b.goto(&app.url(path)).await.unwrap();
        until_text(&b, text).await;
        shot(&b, name).await;
    }

    // A hotline call taken in through the form, and the case it became with its caller.
    b.goto(&app.url("/console/intake")).await.unwrap();
    until_text(&b, "受理来件").await;
    shot(&b, "16-zh-intake").await;
    for (field, text) in [
        ("#in-ref", "12345-0900"),
        ("#in-address", "和平路 12 号门口"),
        ("#in-name", "张三"),
        ("#in-phone", "13812345678"),
        ("#in-description", "垃圾堆放三天"),
    ] {
        let input = b.find(Locator::Css(field)).await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    b.find(Locator::Css("#in-category"))
        .await
        .unwrap()
        .select_by_value("event:0102")
        .await
        .unwrap();
    // The place is picked on the map: a click on the first zone's name fills in a position
    // inside that zone, in the datum the map is drawn in.
    b.find(Locator::Css(".pick-map text.zone-label"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut values = Vec::new();
    for id in ["#in-lat", "#in-lon", "#in-datum"] {
        let field = b.find(Locator::Css(id)).await.unwrap();
        values.push(field.prop("value").await.unwrap().unwrap_or_default());
    }
    let (lat, lon): (f64, f64) = (values[0].parse().unwrap(), values[1].parse().unwrap());
    let (west, south, east, north) = gridline_server::demo::zone_rect(0);
    assert!(
        (south..north).contains(&lat) && (west..east).contains(&lon),
        "the click gave {lat}, {lon}"
    );
    assert_eq!(values[2], "wgs84");
    shot(&b, "16-zh-intake-picked").await;
    b.find(Locator::Css("form.intake button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "受理信息").await;
    until_text(&b, "13812345678").await;
    shot(&b, "16-zh-intake-case").await;

    // Inspection plans, in Chinese and then in English: the list, the editor refusing a plan
    // with no zone (the problem beside the field), a plan's page with a missed occurrence and
    // a round done, the calendar and the coverage map with two tracks.
    let plan = plans_to_show(&app).await;
    // A tall window, so that each picture holds the whole page.
    b.set_window_size(1366, 1700).await.unwrap();
    let coverage = format!("/console/coverage?zone={}&month=2026-11", app.zone("Z01"));
    for (lang, texts) in [
        (
            "zh-CN",
            ["巡查计划", "计划未创建", "错过", "日历", "覆盖率"],
        ),
        (
            "en",
            [
                "Inspection plans",
                "The plan was not made",
                "Missed",
                "Calendar",
                "cells",
            ],
        ),
    ] {
        b.goto(&app.url(&format!("/console/lang?set={lang}")))
            .await
            .unwrap();
        b.goto(&app.url("/console/plans")).await.unwrap();
        until_text(&b, texts[0]).await;
        shot(&b, &format!("17-{lang}-plans")).await;
        b.goto(&app.url("/console/plans/new")).await.unwrap();
        b.find(Locator::Css("#pl-name"))
            .await
            .unwrap()
            .send_keys("东区夜查")
            .await
            .unwrap();
        b.find(Locator::Css("form.plan-editor button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until_text(&b, texts[1]).await;
        // The picture shows the problem beside its field.
        let problem = b.find(Locator::Css("#pl-zones-err")).await.unwrap();
        b.execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![serde_json::to_value(&problem).unwrap()],
        )
        .await
        .unwrap();
        shot(&b, &format!("17-{lang}-plan-editor-error")).await;
        b.goto(&app.url(&format!("/console/plans/{plan}?month=2026-11")))
            .await
            .unwrap();
        until_text(&b, texts[2]).await;
        shot(&b, &format!("17-{lang}-plan")).await;
        b.goto(&app.url("/console/calendar?month=2026-11"))
            .await
            .unwrap();
        until_text(&b, texts[3]).await;
        shot(&b, &format!("17-{lang}-calendar")).await;
        b.goto(&app.url(&coverage)).await.unwrap();
        until_text(&b, texts[4]).await;
        shot(&b, &format!("17-{lang}-coverage")).await;
    }
    b.set_window_size(1366, 768).await.unwrap();

    // On a tablet (portrait, 820 px wide) the pages fit the width: nothing to scroll sideways
    // but the tables' own area.
    b.set_window_size(820, 1180).await.unwrap();
    for (path, text, name) in [
        ("/console", "Overview", "15-tablet-overview"),
        (
            "/console/queue?state=any",
            "Review queue",
            "15-tablet-queue",
        ),
        ("/console/map", "Zones and open cases", "15-tablet-map"),
    ] {
        b.goto(&app.url(path)).await.unwrap();
        until_text(&b, text).await;
        let overflow = b
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().unwrap_or(1) <= 0,
            "{path} is wider than a tablet by {overflow} px"
        );
        shot(&b, name).await;
    }
    b.close().await.unwrap();
    app.stop().await;
}

/// Plans to show in the walk: a weekly plan with a round done for its occurrence of
/// 30 November (and that of the 26th missed) and an unannounced plan, and two tracks across
/// zone Z01 that month. The weekly plan's id.
async fn plans_to_show(app: &TestApp) -> uuid::Uuid {
    use crate::console_plans::{insert_round, walk_across};
    use crate::support::user_id;
    let token = app.login("supervisor1").await;
    let inspector = user_id(app, "inspector1").await;
    let zone = app.zone("Z01");
    let mut ids = Vec::new();
    for (name, kind, rrule) in [
        ("东区每周巡查", "periodic", "FREQ=WEEKLY;BYDAY=MO,TH"),
        ("东区夜间暗访", "unannounced", "FREQ=MONTHLY;BYMONTHDAY=15"),
    ] {
        let (status, plan) = app
            .post(
                "/v1/plans",
                Some(&token),
                &json!({
                    "name": name, "kind": kind, "rrule": rrule,
                    "dtstart": "2026-11-26T09:00", "window_minutes": 120,
                    "zones": [zone], "assignees": [inspector],
                    "checklist": {"items": [
                        {"id": "covers", "label": "井盖完好", "weight": 3, "mandatory": true},
                        {"id": "litter", "label": "无暴露垃圾", "weight": 1, "category_code": "event:0102"}
                    ]}
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{plan}");
        ids.push(uuid::Uuid::parse_str(plan["id"].as_str().unwrap()).unwrap());
    }
    let walk = walk_across(app, &token, zone).await;
    let done = insert_round(app, zone, inspector, "periodic", &walk[..=12]).await;
    let unannounced = insert_round(app, zone, inspector, "unannounced", &walk[8..]).await;
    // 30 November, 09:10 in Shanghai: within the window of that Monday's occurrence.
    sqlx::query(
        "UPDATE rounds SET plan_id = $1, occurrence_at = $2, started_at = $3, \
         score_permille = 750, items_failed = 1 WHERE id = $4",
    )
    .bind(ids[0].to_string())
    .bind(1_796_000_400_000_i64)
    .bind(1_796_001_000_000_i64)
    .bind(done.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    // 27 November, 21:00 in Shanghai.
    sqlx::query("UPDATE rounds SET started_at = $1 WHERE id = $2")
        .bind(1_795_784_400_000_i64)
        .bind(unannounced.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    ids[0]
}

/// The console's sessions without a browser: the cookie's attributes, roles, shared lockout
/// with the API, expiry that leaves an htmx page as it is, and sign-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_follow_the_apis_rules() {
    let app = TestApp::on(Db::Sqlite).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |username: &'static str, password: &'static str| {
        http.post(app.url("/console/login"))
            .form(&[
                ("username", username),
                ("password", password),
                ("next", "/console/queue"),
            ])
            .send()
    };
    // Not signed in: to the sign-in page, and back afterwards.
    let resp = http.get(app.url("/console/queue")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()["location"],
        "/console/login?next=%2Fconsole%2Fqueue"
    );

    let resp = login("supervisor1", gridline_server::demo::DEMO_PASSWORD)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/console/queue");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let session = set.split(';').next().unwrap().to_owned();
    let resp = http
        .get(app.url("/console/queue"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let policy = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    // The queue's filters as a form sends them: empty means any; a wrong value says which.
    for (query, status) in [
        (
            "work_category=environmental_sanitation&source=inspection&state=&zone_id=",
            StatusCode::OK,
        ),
        ("work_category=gardening", StatusCode::UNPROCESSABLE_ENTITY),
        ("overdue=maybe", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let resp = http
            .get(app.url(&format!("/console/queue?{query}")))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{query}");
    }

    // Inspectors use their phones: no console session.
    let resp = login("inspector1", gridline_server::demo::DEMO_PASSWORD)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get("set-cookie").is_none());

    // Failed sign-ins count with the API's: after five, the API refuses the name as well.
    for _ in 0..5 {
        let resp = login("zonechief1", "wrong").await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"username": "zonechief1", "password": gridline_server::demo::DEMO_PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );

    // An expired session: a page goes to the sign-in page; an htmx request gets a note in the
    // page's message area and changes nothing else on it.
    sqlx::query("UPDATE console_sessions SET expires_at = 0")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let resp = http
        .get(app.url("/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = http
        .post(app.url(&format!(
            "/console/cases/{}/transition",
            uuid::Uuid::now_v7()
        )))
        .header("cookie", &session)
        .header("hx-request", "true")
        .form(&[("action", "file"), ("base_version", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["hx-retarget"], "#messages");

    // A finding with no case: proposed on the decisions page by one supervisor, approved
    // there by another.
    let signed_in = |username: &'static str| {
        let http = http.clone();
        let url = app.url("/console/login");
        async move {
            let resp = http
                .post(url)
                .form(&[
                    ("username", username),
                    ("password", gridline_server::demo::DEMO_PASSWORD),
                ])
                .send()
                .await
                .unwrap();
            resp.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        }
    };
    let csrf_of = |page: &str| {
        page.split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned()
    };
    let decisions_page = |cookie: &str| {
        let req = http
            .get(app.url("/console/decisions"))
            .header("cookie", cookie.to_owned());
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let sup1 = signed_in("supervisor1").await;
    let page = decisions_page(&sup1).await;
    let z2 = app.zone("Z02").to_string();
    let resp = http
        .post(app.url("/console/deductions/direct"))
        .header("cookie", &sup1)
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("zone_id", z2.as_str()),
            ("source", "leader_criticism"),
            ("rule_code", "LEADER"),
            (
                "found_on",
                &time::OffsetDateTime::now_utc().date().to_string(),
            ),
            ("note", "district head: back streets dirty"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let sup2 = signed_in("supervisor2").await;
    let page = decisions_page(&sup2).await;
    assert!(page.contains("district head: back streets dirty"), "{page}");
    let action = page
        .split("action=\"/console/deductions/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(action.ends_with("/approve"), "{action}");
    let resp = http
        .post(app.url(&format!("/console/deductions/{action}")))
        .header("cookie", &sup2)
        .form(&[("csrf", csrf_of(&page).as_str()), ("back", "decisions")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, ledger) = app.get("/v1/ledger", Some(&app.login("admin").await)).await;
    assert_eq!(ledger["items"][0]["source"], "leader_criticism", "{ledger}");

    // Sign-out ends the session on the server, whatever the browser keeps.
    let resp = login("supervisor1", gridline_server::demo::DEMO_PASSWORD)
        .await
        .unwrap();
    let session = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(app.url("/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let resp = http
        .post(app.url("/console/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = http
        .get(app.url("/console"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "the old cookie opens nothing"
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'session.%' ORDER BY at",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "session.open",
            "session.open",
            "session.open",
            "session.open",
            "session.end"
        ]
    );
    app.stop().await;
}

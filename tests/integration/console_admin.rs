//! The console's administration pages and overview over HTTP, as a browser's forms send them:
//! each change goes through the API's services (same checks, same audit), only admins reach
//! the pages, and the overview names who is behind on overdue cases.

use gridline_testkit::{on_both_backends, Db, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{filed_case, must_transition};

on_both_backends!(the_map_draws_the_open_cases_however_many_closed_ones_come_first);

/// A console client signed in as one user: its cookie and the CSRF token of its session.
pub(crate) struct Browser {
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Browser {
    pub(crate) async fn sign_in(app: &TestApp, username: &str) -> Browser {
        let (http, cookie) = gridline_testkit::console_sign_in(&app.base, username)
            .await
            .unwrap();
        let mut b = Browser {
            http,
            cookie,
            csrf: String::new(),
        };
        let (_, page) = b.get(app, "/console").await;
        b.csrf = page
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        b
    }

    pub(crate) async fn get(&self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token; the status and, for a redirect, where to.
    pub(crate) async fn post(
        &self,
        app: &TestApp,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        let resp = self
            .http
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        (status, location.unwrap_or(text))
    }

    /// Sends a file as a form's file field (`multipart/form-data`) with the CSRF token first;
    /// the status and, for a redirect, where to.
    pub(crate) async fn post_file(
        &self,
        app: &TestApp,
        path: &str,
        (field, file_name, bytes): (&str, &str, &[u8]),
    ) -> (StatusCode, String) {
        let boundary = "gridline-test-boundary-7d1f";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/pdf\r\n\r\n",
            self.csrf
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .http
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        (status, location.unwrap_or(text))
    }
}

async fn user_named(app: &TestApp, admin: &str, username: &str) -> Value {
    let (_, users) = app.get("/v1/users", Some(admin)).await;
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .cloned()
        .unwrap_or_else(|| panic!("no user {username}: {users}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_roster_devices_and_coefficients_from_the_console() {
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    let api_admin = app.login("admin").await;
    let admin = Browser::sign_in(&app, "admin").await;
    let supervisor = Browser::sign_in(&app, "supervisor1").await;

    // Only admins see the pages, and the navigation offers them to admins only.
    for page in [
        "/console/admin/users",
        "/console/admin/devices",
        "/console/admin/roster",
        "/console/admin/zones",
        "/console/admin/reference",
    ] {
        let (status, body) = admin.get(&app, page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        let (status, _) = supervisor.get(&app, page).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page} as a supervisor");
    }
    let (_, overview) = supervisor.get(&app, "/console").await;
    assert!(
        !overview.contains("/console/admin"),
        "supervisors get no admin link"
    );
    let (_, overview) = admin.get(&app, "/console").await;
    assert!(overview.contains("href=\"/console/admin\""));

    // A user, created by the form; a weak password is refused with the API's reason.
    let (status, body) = admin
        .post(
            &app,
            "/console/admin/users",
            &[
                ("username", "chief.new"),
                ("display_name", "New road chief"),
                ("password", "short"),
                ("roles", "road_chief"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, to) = admin
        .post(
            &app,
            "/console/admin/users",
            &[
                ("username", "chief.new"),
                ("display_name", "New road chief"),
                ("password", "a long enough password"),
                ("roles", "road_chief"),
                ("roles", "section_chief"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "/console/admin/users")
    );
    let created = user_named(&app, &api_admin, "chief.new").await;
    assert_eq!(created["roles"], json!(["road_chief", "section_chief"]));
    let id = created["id"].as_str().unwrap().to_owned();

    // Roles changed, then the account disabled: its sign-in stops.
    let (status, _) = admin
        .post(
            &app,
            &format!("/console/admin/users/{id}"),
            &[("display_name", "Road chief, Z02"), ("roles", "road_chief")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let changed = user_named(&app, &api_admin, "chief.new").await;
    assert_eq!(
        (&changed["display_name"], &changed["roles"]),
        (&json!("Road chief, Z02"), &json!(["road_chief"]))
    );

    // The roster: opened on Z02, moved to Z03 (the old row ends as the new one starts), and
    // the roster as it stood before the move still shows Z02.
    let z2 = app.zone("Z02").to_string();
    let z3 = app.zone("Z03").to_string();
    let (status, body) = admin
        .post(
            &app,
            "/console/admin/roster",
            &[("user_id", &id), ("role", "supervisor"), ("zone_id", &z2)],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a role they lack: {body}"
    );
    let (status, _) = admin
        .post(
            &app,
            "/console/admin/roster",
            &[("user_id", &id), ("role", "road_chief"), ("zone_id", &z2)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, rows) = app
        .get(
            &format!("/v1/roster?user_id={id}&all=true"),
            Some(&api_admin),
        )
        .await;
    let first = rows[0].clone();
    assert_eq!(first["zone_id"], json!(z2));
    let (status, _) = admin
        .post(
            &app,
            &format!(
                "/console/admin/roster/{}/reassign",
                first["id"].as_str().unwrap()
            ),
            &[("role", "road_chief"), ("zone_id", &z3)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, rows) = app
        .get(
            &format!("/v1/roster?user_id={id}&all=true"),
            Some(&api_admin),
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["valid_to"], rows[1]["valid_from"]);
    assert_eq!(rows[1]["zone_id"], json!(z3));
    assert!(rows[1]["valid_to"].is_null());
    // Who was rostered at a moment: now, the new row; a day ago, neither; the history, both.
    let row = "Road chief, Z02 <span class=\"muted\">chief.new</span>";
    let (_, now) = admin.get(&app, "/console/admin/roster").await;
    assert_eq!(now.matches(row).count(), 1, "{now}");
    let yesterday = (time::OffsetDateTime::now_utc() - time::Duration::days(1)).date();
    let (_, then) = admin
        .get(&app, &format!("/console/admin/roster?at={yesterday}T12:00"))
        .await;
    assert_eq!(then.matches(row).count(), 0);
    let (_, history) = admin.get(&app, "/console/admin/roster?history=true").await;
    assert_eq!(history.matches(row).count(), 2, "both rows in the history");
    let (status, _) = admin.get(&app, "/console/admin/roster?at=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin
        .post(
            &app,
            &format!(
                "/console/admin/roster/{}/end",
                rows[1]["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = admin
        .post(
            &app,
            &format!(
                "/console/admin/roster/{}/end",
                rows[1]["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ended assignment ends once"
    );

    // Disabling: never one's own account; another's stops its sign-in at once.
    let own = user_named(&app, &api_admin, "admin").await;
    let (status, _) = admin
        .post(
            &app,
            &format!("/console/admin/users/{}", own["id"].as_str().unwrap()),
            &[("disabled", "true")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin
        .post(
            &app,
            &format!("/console/admin/users/{id}"),
            &[("disabled", "true")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"username": "chief.new", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A coefficient for an open period, checked as the API checks it.
    let (_, periods) = app.get("/v1/periods", Some(&api_admin)).await;
    let open = periods
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "open")
        .cloned()
        .expect("the test site has an open period");
    let pid = open["id"].as_str().unwrap();
    let path = format!("/console/admin/periods/{pid}/coefficients/{z3}");
    let (status, _) = admin.post(&app, &path, &[("coefficient", "12")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = admin.post(&app, &path, &[("coefficient", "1.25")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, set) = app
        .get(&format!("/v1/periods/{pid}/coefficients"), Some(&api_admin))
        .await;
    assert!(
        set.as_array()
            .unwrap()
            .iter()
            .any(|k| k["zone_id"] == json!(z3) && k["coefficient"] == json!(1.25)),
        "{set}"
    );

    // A phone revoked from the devices page.
    let phone = gridline_testkit::Phone::enrol(&app, "inspector1").await;
    let (_, page) = admin.get(&app, "/console/admin/devices").await;
    assert!(page.contains(&phone.device_id.to_string()));
    let (status, _) = admin
        .post(
            &app,
            &format!("/console/admin/devices/{}/revoke", phone.device_id),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, devices) = app.get("/v1/devices", Some(&api_admin)).await;
    assert!(devices
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device_id"] == json!(phone.device_id) && d["revoked_at"].is_string()));

    // Without the session's token nothing changes.
    let resp = admin
        .http
        .post(app.url(&format!("/console/admin/users/{id}")))
        .header("cookie", &admin.cookie)
        .form(&[("disabled", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Every change is in the audit log under the admin's name, as the API's would be.
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action NOT LIKE 'session.%' \
         AND action NOT LIKE 'device.enrol%' ORDER BY at, action",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    for want in [
        "user.create",
        "user.update",
        "roster.open",
        "roster.reassign",
        "roster.close",
        "coefficient.set",
        "device.revoke",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_names_the_chiefs_behind_on_overdue_cases() {
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let (_, case) = app.get(&format!("/v1/cases/{id}"), Some(&sup)).await;
    let zone = case["zone_id"].as_str().unwrap().to_owned();
    let code = ["Z01", "Z02", "Z03", "Z04", "Z05", "Z06", "Z07", "Z08"]
        .into_iter()
        .find(|c| app.zone(c).to_string() == zone)
        .unwrap();
    let browser = Browser::sign_in(&app, "supervisor1").await;
    let (_, page) = browser.get(&app, "/console").await;
    assert!(
        !page.contains("Overdue by accountable person"),
        "nothing is late yet"
    );

    // Its deadline passes.
    sqlx::query("UPDATE cases SET deadline_at = 1 WHERE id = $1")
        .bind(id.to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (_, page) = browser.get(&app, "/console").await;
    assert!(page.contains("Overdue by accountable person"), "{page}");
    // The cards count the open cases by what waits for whom.
    for card in [
        "<span class=\"n\">1</span><span>Overdue</span>",
        "<span class=\"n\">0</span><span>Cases awaiting review</span>",
    ] {
        assert!(page.contains(card), "{card}: {page}");
    }
    for person in [
        format!("Road chief {code}"),
        format!("Section chief {code}"),
    ] {
        assert!(page.contains(&person), "{person} is named: {page}");
    }
    assert!(page.contains(&format!(
        "/console/queue?zone_id={zone}&amp;state=dispatched,in_progress&amp;overdue=true"
    )));
    // The link leads to exactly that case.
    let (_, queue) = browser
        .get(
            &app,
            &format!("/console/queue?zone_id={zone}&state=dispatched,in_progress&overdue=true"),
        )
        .await;
    assert_eq!(queue.matches("class=\"queue-row").count(), 1, "{queue}");
    assert!(queue.contains(&id.to_string()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_marked_a_duplicate_of_a_case_chosen_by_what_it_says() {
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    // Two reports of the same kind in the same zone.
    let (_, original) = crate::support::synced_case(&app).await;
    let (_, report) = crate::support::synced_case(&app).await;
    let browser = Browser::sign_in(&app, "supervisor1").await;

    // The case page offers the original by its time, state and description, not by an id to
    // type; so does the queue row, from the cases on the same page.
    let (_, page) = browser.get(&app, &format!("/console/cases/{report}")).await;
    assert!(
        page.contains(&format!("<option value=\"{original}\"")),
        "{page}"
    );
    let (_, queue) = browser.get(&app, "/console/queue").await;
    assert!(queue.contains(&format!("id=\"dup-{report}\"")), "{queue}");

    let sup = app.login("supervisor1").await;
    let version = crate::support::case(&app, &sup, report).await["version"].to_string();
    let resp = browser
        .http
        .post(app.url(&format!("/console/cases/{report}/transition")))
        .header("cookie", &browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .header("hx-request", "true")
        .form(&[
            ("action", "mark_duplicate"),
            ("base_version", version.as_str()),
            ("row", "1"),
            ("duplicate_of", &original.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let row = resp.text().await.unwrap();
    assert!(
        row.contains("Duplicate"),
        "the row shows the case as it is now: {row}"
    );
    let after = crate::support::case(&app, &sup, report).await;
    assert_eq!(after["state"], "duplicate", "{after}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_lay_configured_tiles_under_the_zones_and_allow_only_their_host() {
    let Some(app) = TestApp::builder()
        .config(|config| {
            config.console.map_tiles = Some(gridline_server::config::MapTiles {
                url: "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png".into(),
                subdomains: Vec::new(),
                datum: gridline_sync::Datum::Gcj02,
                attribution: "© Test tiles".into(),
                max_zoom: 18,
            });
        })
        .spawn()
        .await
    else {
        return;
    };
    let browser = Browser::sign_in(&app, "supervisor1").await;
    let resp = browser
        .http
        .get(app.url("/console/map"))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .unwrap();
    let policy = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("img-src 'self' data: http://127.0.0.1:9;"),
        "{policy}"
    );
    assert!(
        policy.contains("connect-src 'self'"),
        "tiles are images only: {policy}"
    );
    let page = resp.text().await.unwrap();
    let tiles = page
        .matches("<image href=\"http://127.0.0.1:9/tiles/")
        .count();
    assert!(tiles >= 1, "{page}");
    assert!(page.contains("© Test tiles"));
    app.stop().await;

    // With no tile service, a plain background and the usual policy.
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    let browser = Browser::sign_in(&app, "supervisor1").await;
    let resp = browser
        .http
        .get(app.url("/console/map"))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("img-src 'self' data:;"));
    assert!(!resp.text().await.unwrap().contains("<image "));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chief_reads_a_dispatch_in_the_console_inbox() {
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    let (_phone, id) = filed_case(&app).await;
    let sup = app.login("supervisor1").await;
    must_transition(&app, &sup, id, json!({"action": "dispatch"})).await;
    let chief = Browser::sign_in(&app, "roadchief1").await;
    let (status, page) = chief.get(&app, "/console/inbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("1 unread."), "{page}");
    assert!(
        page.contains("Dispatched to you: Exposed garbage"),
        "{page}"
    );
    let notice = page
        .split("action=\"/console/inbox/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    // Opening it records the receipt and leads to the case.
    let (status, to) = chief
        .post(
            &app,
            &format!("/console/inbox/{notice}/read"),
            &[("open", &id.to_string())],
        )
        .await;
    assert_eq!(
        (status, to),
        (StatusCode::SEE_OTHER, format!("/console/cases/{id}"))
    );
    let (_, page) = chief.get(&app, "/console/inbox").await;
    assert!(page.contains("0 unread."), "{page}");
    // Another person's notice is not theirs to mark.
    let other = Browser::sign_in(&app, "roadchief2").await;
    let (status, _) = other
        .post(&app, &format!("/console/inbox/{notice}/read"), &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// The map draws the open cases in scope even behind thousands of closed ones: more closed
/// cases than the map's marker limit, with ids sorting before the open one, do not push it off.
async fn the_map_draws_the_open_cases_however_many_closed_ones_come_first(app: TestApp) {
    let (_phone, id) = filed_case(&app).await;
    let ids: Vec<String> = (0..2100)
        .map(|i| format!("('00000000-0000-7000-8000-{i:012}')"))
        .collect();
    let columns = "zone_id, reporter_id, device_id, source, category_code, description, \
                   severity, asset_code, lat, lon, accuracy_m, captured_at, queued_at, \
                   received_at, round_id, version, locked_at, flags, created_at, updated_at";
    sqlx::query(&format!(
        "WITH n(nid) AS (VALUES {}) INSERT INTO cases (id, state, {columns}) \
         SELECT n.nid, 'closed', {columns} FROM n, cases WHERE cases.id = '{id}'",
        ids.join(",")
    ))
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let browser = Browser::sign_in(&app, "supervisor1").await;
    let (status, page) = browser.get(&app, "/console/map").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("href=\"/console/cases/{id}\"")),
        "the open case has its marker: {page}"
    );
    assert_eq!(page.matches("href=\"/console/cases/").count(), 1, "{page}");
    assert!(page.contains("1 open cases"), "{page}");
    app.stop().await;
}

/// An admin publishes a new rulebook version from the console's editor, filled with the version
/// in force: a rule changed, one dropped, one added. It goes through the same checks as the
/// API (bad points are refused and nothing is published) and a supervisor may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_publishes_a_new_rulebook_version_from_the_console() {
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    let admin = app.login("admin").await;
    let (_, before) = app.get("/v1/rulebooks/active", Some(&admin)).await;
    let rules = before["rules"].as_array().unwrap().clone();
    let browser = Browser::sign_in(&app, "admin").await;
    let (status, page) = browser.get(&app, "/console/admin/reference").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("action=\"/console/admin/rulebooks\""),
        "{page}"
    );
    for (i, r) in rules.iter().enumerate() {
        let code = r["code"].as_str().unwrap();
        assert!(
            page.contains(&format!(
                "name=\"rule-{i}-code\" maxlength=\"64\" size=\"12\" value=\"{code}\""
            )),
            "row {i} holds {code}"
        );
    }

    // The form as the browser sends it: MEDIA at 3 points, LEADER's code cleared, a new rule.
    let mut owned: Vec<(String, String)> = vec![
        ("name".into(), before["name"].as_str().unwrap().into()),
        ("effective_from".into(), "2026-01-01T00:00".into()),
    ];
    for (i, r) in rules.iter().enumerate() {
        let code = r["code"].as_str().unwrap();
        let field = |f: &str| format!("rule-{i}-{f}");
        owned.push((
            field("code"),
            if code == "LEADER" {
                String::new()
            } else {
                code.into()
            },
        ));
        owned.push((field("text"), r["description"].as_str().unwrap().into()));
        let points = if code == "MEDIA" {
            "3".to_owned()
        } else {
            r["points"].to_string()
        };
        owned.push((field("points"), points));
        for s in r["sources"].as_array().unwrap() {
            owned.push((field("sources"), s.as_str().unwrap().into()));
        }
        for t in r["taxonomy_codes"].as_array().unwrap() {
            owned.push((field("categories"), t.as_str().unwrap().into()));
        }
    }
    let n = rules.len();
    for (f, v) in [
        ("code", "NIGHT-MARKET"),
        ("text", "Unlicensed night market stall found by inspection"),
        ("points", "0.25"),
        ("sources", "inspection"),
        ("categories", "event:0501"),
    ] {
        owned.push((format!("rule-{n}-{f}"), v.into()));
    }
    owned.push((format!("rule-{}-code", n + 1), String::new()));
    let fields: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    // Bad points: refused, nothing published.
    let mut bad = fields.clone();
    let at = bad.iter().position(|(k, _)| *k == "rule-0-points").unwrap();
    bad[at].1 = "lots";
    let (status, _) = browser.post(&app, "/console/admin/rulebooks", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let supervisor = Browser::sign_in(&app, "supervisor1").await;
    let (status, _) = supervisor
        .post(&app, "/console/admin/rulebooks", &fields)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, still) = app.get("/v1/rulebooks/active", Some(&admin)).await;
    assert_eq!(still["version"], before["version"]);

    let (status, location) = browser
        .post(&app, "/console/admin/rulebooks", &fields)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, "/console/admin/reference");
    let (_, after) = app.get("/v1/rulebooks/active", Some(&admin)).await;
    assert_eq!(
        after["version"],
        before["version"].as_i64().unwrap() + 1,
        "{after}"
    );
    let rule = |code: &str| {
        after["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["code"] == code)
            .cloned()
    };
    assert_eq!(rule("MEDIA").unwrap()["points"], 3.0);
    assert!(rule("LEADER").is_none(), "dropped");
    let night = rule("NIGHT-MARKET").unwrap();
    assert_eq!(night["sources"], json!(["inspection"]));
    assert_eq!(night["taxonomy_codes"], json!(["event:0501"]));
    // Unchanged texts keep their translations.
    let old_media = rules.iter().find(|r| r["code"] == "MEDIA").unwrap();
    assert_eq!(
        rule("MEDIA").unwrap()["translations"],
        old_media["translations"]
    );
    assert_eq!(after["rules"].as_array().unwrap().len(), rules.len());
    app.stop().await;
}

/// An admin refines the taxonomy from the console: a name and a time limit changed, an entry
/// added; only what changed is stored and audited, and a bad time limit stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edits_the_taxonomy_from_the_console() {
    let Some(app) = TestApp::on(Db::Sqlite).await else {
        return;
    };
    let admin = app.login("admin").await;
    let (_, before) = app.get("/v1/taxonomy", Some(&admin)).await;
    let before = before.as_array().unwrap().clone();
    let mut owned: Vec<(String, String)> = Vec::new();
    for (i, t) in before.iter().enumerate() {
        let field = |f: &str| format!("t-{i}-{f}");
        let garbage = t["key"] == "event:0102";
        owned.push((field("kind"), t["kind"].as_str().unwrap().into()));
        owned.push((field("code"), t["code"].as_str().unwrap().into()));
        owned.push((field("zh"), t["name_zh"].as_str().unwrap().into()));
        let en = if garbage {
            "Exposed rubbish"
        } else {
            t["name_en"].as_str().unwrap()
        };
        owned.push((field("en"), en.into()));
        owned.push((field("work"), t["work_category"].as_str().unwrap().into()));
        let hours = if garbage {
            owned.push((field("unit"), "working_days".into()));
            "2".to_owned()
        } else {
            t["time_limit_hours"]
                .as_i64()
                .map(|h| h.to_string())
                .unwrap_or_default()
        };
        owned.push((field("hours"), hours));
    }
    let n = before.len();
    for (f, v) in [
        ("kind", "event"),
        ("code", "2188"),
        ("zh", "夜市占道"),
        ("en", "Night market on the roadway"),
        ("work", before[0]["work_category"].as_str().unwrap()),
        ("hours", ""),
    ] {
        owned.push((format!("t-{n}-{f}"), v.into()));
    }
    let fields: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let browser = Browser::sign_in(&app, "admin").await;
    let audits = |app: &TestApp| {
        let pool = app.state.db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'taxonomy.upsert'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let audited = audits(&app).await;

    let mut bad = fields.clone();
    let at = bad.iter().position(|(k, _)| *k == "t-0-hours").unwrap();
    bad[at].1 = "soon";
    let (status, _) = browser.post(&app, "/console/admin/taxonomy", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, location) = browser.post(&app, "/console/admin/taxonomy", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, after) = app.get("/v1/taxonomy", Some(&admin)).await;
    let entry = |key: &str| {
        after
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry("event:0102")["name_en"], "Exposed rubbish");
    assert_eq!(entry("event:0102")["time_limit_hours"], Value::Null);
    assert_eq!(entry("event:0102")["time_limit_working_days"], 2);
    assert_eq!(entry("event:2188")["name_zh"], "夜市占道");
    assert_eq!(after.as_array().unwrap().len(), n + 1);
    assert_eq!(
        audits(&app).await,
        audited + 2,
        "the changed entry and the new one"
    );

    // The working-day calendar is imported on the same page, which lists this year's and next
    // year's days (next year's in UTC is one of the two in the site's time zone).
    let year = time::OffsetDateTime::now_utc().year() + 1;
    let file = format!("date,kind,name\n{year}-12-21,holiday,Winter solstice\n");
    let (status, _) = browser
        .post(
            &app,
            "/console/admin/calendar",
            &[("csv", "date,kind,name\n2026-12-21,bad,x\n")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, location) = browser
        .post(&app, "/console/admin/calendar", &[("csv", file.as_str())])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, page) = browser.get(&app, "/console/admin/reference").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Winter solstice"), "the day is listed");
    app.stop().await;
}

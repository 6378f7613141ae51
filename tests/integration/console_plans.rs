//! Inspection plans in the console over HTTP, as a browser's forms send them: a planner makes a
//! plan through the editor (and sees each problem beside its field), nobody else opens it, an
//! unannounced plan stays out of a road chief's list, calendar and reach, and the coverage of a
//! zone leaves out the unannounced rounds hidden from its reader.

use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::console_admin::Browser;
use crate::support::user_id;

on_both_backends!(
    a_planner_makes_a_plan_through_the_console_form,
    only_planners_open_the_plan_editor,
    a_road_chief_sees_no_unannounced_plan_in_the_console,
    coverage_leaves_out_an_unannounced_round_for_a_road_chief_only,
);

async fn a_planner_makes_a_plan_through_the_console_form(app: TestApp) {
    let sup = Browser::sign_in(&app, "supervisor1").await;
    let (status, editor) = sup.get(&app, "/console/plans/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(editor.contains("name=\"items[0].id\""), "{editor}");

    let zone = app.zone("Z01").to_string();
    let inspector = user_id(&app, "inspector1").await.to_string();
    let mut fields = vec![
        ("name", "东区每周巡查"),
        ("kind", "periodic"),
        ("preset", "weekly"),
        ("weekdays", "MO"),
        ("weekdays", "TH"),
        ("start_date", "2026-11-26"),
        ("start_time", "09:00"),
        ("window", "2"),
        ("window_unit", "hours"),
        ("zones", zone.as_str()),
        ("assignees", inspector.as_str()),
        ("items[0].id", "covers"),
        ("items[0].label", "井盖完好"),
        ("items[0].weight", "3"),
        ("items[0].mandatory", "1"),
        // A blank row between two filled ones is left out.
        ("items[1].id", ""),
        ("items[1].label", ""),
        ("items[2].id", "litter"),
        ("items[2].label", "无暴露垃圾"),
        ("items[2].weight", "0"),
    ];

    // A weight of 0: refused, the problem beside row 3 (not row 2), everything typed kept.
    let (status, page) = sup.post(&app, "/console/plans", &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("id=\"pl-item-2-err\""), "{page}");
    assert!(!page.contains("id=\"pl-item-1-err\""), "{page}");
    assert!(page.contains("value=\"东区每周巡查\""), "{page}");
    assert!(page.contains("value=\"无暴露垃圾\""), "{page}");
    let (_, listed) = app
        .get("/v1/plans", Some(&app.login("supervisor1").await))
        .await;
    assert_eq!(listed, json!([]), "nothing was made");

    // No zone: the problem beside the zones.
    let no_zone: Vec<(&str, &str)> = fields
        .iter()
        .copied()
        .filter(|(k, _)| *k != "zones")
        .map(|(k, v)| {
            if k == "items[2].weight" {
                (k, "1")
            } else {
                (k, v)
            }
        })
        .collect();
    let (status, page) = sup.post(&app, "/console/plans", &no_zone).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("id=\"pl-zones-err\""), "{page}");
    assert!(
        page.contains("Choose at least one zone in your scope."),
        "{page}"
    );

    fields.retain(|(k, _)| *k != "items[2].weight");
    let (status, location) = sup.post(&app, "/console/plans", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let id = location
        .strip_prefix("/console/plans/")
        .and_then(|rest| rest.split('?').next())
        .unwrap()
        .to_owned();
    let token = app.login("supervisor1").await;
    let (status, plan) = app.get(&format!("/v1/plans/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["name"], "东区每周巡查");
    assert_eq!(plan["rrule"], "FREQ=WEEKLY;BYDAY=MO,TH");
    assert_eq!(plan["dtstart"], "2026-11-26T09:00");
    assert_eq!(plan["window_minutes"], 120);
    assert_eq!(plan["zones"], json!([zone]));
    let items: Vec<&str> = plan["checklist"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["covers", "litter"]);
    assert_eq!(plan["checklist"]["items"][0]["mandatory"], true);
    assert_eq!(plan["checklist"]["items"][1]["weight"], 1);

    // Its page shows the month's occurrences, the earlier ones missed.
    let (status, page) = sup
        .get(&app, &format!("/console/plans/{id}?month=2026-11"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("2026-11-26 09:00"), "{page}");
    assert!(page.contains("2026-11-30 09:00"), "{page}");
    assert!(page.contains("class=\"missed\""), "{page}");
    let (status, list) = sup.get(&app, "/console/plans").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("东区每周巡查") && list.contains("FREQ=WEEKLY;BYDAY=MO,TH"));

    // Cancelled from its page.
    let (status, _) = sup
        .post(&app, &format!("/console/plans/{id}/cancel"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, plan) = app.get(&format!("/v1/plans/{id}"), Some(&token)).await;
    assert!(plan["cancelled_at"].is_string(), "{plan}");
}

/// An inspector who is also a road chief: the console is the office's, so an inspector signs
/// in only with an office role besides.
async fn office_inspector(app: &TestApp) -> Uuid {
    let admin = app.login("admin").await;
    let (status, user) = app
        .post(
            "/v1/users",
            Some(&admin),
            &json!({
                "username": "patrol-chief",
                "display_name": "Patrol Chief",
                "password": gridline_server::demo::DEMO_PASSWORD,
                "roles": ["inspector", "road_chief"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    // The office inspects every zone: rostered on all of them.
    let (status, body) = app
        .post(
            "/v1/roster",
            Some(&admin),
            &json!({"user_id": id, "role": "inspector"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

async fn only_planners_open_the_plan_editor(app: TestApp) {
    // A plain inspector does not sign in to the console at all.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/console/login"))
        .form(&[
            ("username", "inspector1"),
            ("password", gridline_server::demo::DEMO_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    office_inspector(&app).await;
    let inspector = Browser::sign_in(&app, "patrol-chief").await;
    let (status, _) = inspector.get(&app, "/console/plans/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = inspector
        .post(
            &app,
            "/console/plans",
            &[("name", "x"), ("kind", "periodic")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let chief = Browser::sign_in(&app, "roadchief1").await;
    let (status, _) = chief.get(&app, "/console/plans/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The navigation offers plans to planners and to inspectors with a plan, not to others.
    let (_, page) = inspector.get(&app, "/console").await;
    assert!(!page.contains("href=\"/console/plans\""));
    let admin = Browser::sign_in(&app, "admin").await;
    let (status, page) = admin.get(&app, "/console/plans/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("href=\"/console/plans\""));
}

fn unannounced(app: &TestApp, assignee: Uuid) -> Value {
    json!({
        "name": "夜间暗访",
        "kind": "unannounced",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
        "dtstart": "2026-11-26T21:00",
        "window_minutes": 120,
        "zones": [app.zone("Z01")],
        "assignees": [assignee],
    })
}

async fn a_road_chief_sees_no_unannounced_plan_in_the_console(app: TestApp) {
    let token = app.login("supervisor1").await;
    let inspector = office_inspector(&app).await;
    let (status, plan) = app
        .post("/v1/plans", Some(&token), &unannounced(&app, inspector))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let id = plan["id"].as_str().unwrap();

    let sup = Browser::sign_in(&app, "supervisor1").await;
    let chief = Browser::sign_in(&app, "roadchief1").await;
    let assignee = Browser::sign_in(&app, "patrol-chief").await;
    for (who, b, sees) in [
        ("supervisor1", &sup, true),
        ("patrol-chief", &assignee, true),
        ("roadchief1", &chief, false),
    ] {
        let (status, list) = b.get(&app, "/console/plans").await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert_eq!(list.contains("夜间暗访"), sees, "{who}: list");
        let (status, calendar) = b.get(&app, "/console/calendar?month=2026-12").await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert_eq!(calendar.contains("夜间暗访"), sees, "{who}: calendar");
        let (status, page) = b.get(&app, &format!("/console/plans/{id}")).await;
        let want = if sees {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, want, "{who}: page");
        assert_eq!(page.contains("夜间暗访"), sees, "{who}: page");
    }
    // The assigned inspector has the plans in the navigation.
    let (_, page) = assignee.get(&app, "/console").await;
    assert!(page.contains("href=\"/console/plans\""));

    // Revealed from its page: the chief sees it, and the seal verifies.
    let (status, _) = sup
        .post(&app, &format!("/console/plans/{id}/reveal"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page) = chief.get(&app, &format!("/console/plans/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"seal-verdict\""), "{page}");
    assert!(page.contains("✓"), "{page}");
}

/// A walk along a zone's middle, west to east, and its bounding box.
pub(crate) async fn walk_across(app: &TestApp, token: &str, zone: Uuid) -> Vec<(f64, f64)> {
    let (status, z) = app.get(&format!("/v1/zones/{zone}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{z}");
    let ring = z["boundary"]["coordinates"][0].as_array().unwrap();
    let lons: Vec<f64> = ring.iter().map(|p| p[0].as_f64().unwrap()).collect();
    let lats: Vec<f64> = ring.iter().map(|p| p[1].as_f64().unwrap()).collect();
    let (min_lon, max_lon) = lons
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let (min_lat, max_lat) = lats
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let lat = (min_lat + max_lat) / 2.0;
    (0..=20)
        .map(|i| (lat, min_lon + (max_lon - min_lon) * f64::from(i) / 20.0))
        .collect()
}

/// Writes a round with a track into the database, as the phones' track upload will.
pub(crate) async fn insert_round(
    app: &TestApp,
    zone: Uuid,
    user: Uuid,
    kind: &str,
    points: &[(f64, f64)],
) -> Uuid {
    let line: geo_types::LineString<f64> = points
        .iter()
        .map(|(lat, lon)| geo_types::Coord { x: *lon, y: *lat })
        .collect();
    let track = polyline::encode_coordinates(line, 5).unwrap();
    let started = 1_796_086_800_000_i64; // 2026-12-01T01:00Z, in December in Shanghai
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO rounds (id, zone_id, user_id, device_id, kind, started_at, track, track_points) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(zone.to_string())
    .bind(user.to_string())
    .bind(Uuid::now_v7().to_string())
    .bind(kind)
    .bind(started)
    .bind(track)
    .bind(points.len() as i64)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    id
}

async fn coverage_leaves_out_an_unannounced_round_for_a_road_chief_only(app: TestApp) {
    let zone = app.zone("Z01");
    let sup_token = app.login("supervisor1").await;
    let inspector = user_id(&app, "inspector1").await;
    let walk = walk_across(&app, &sup_token, zone).await;
    // The routine round walks the western half, the unannounced one the eastern half.
    insert_round(&app, zone, inspector, "routine", &walk[..=10]).await;
    insert_round(&app, zone, inspector, "unannounced", &walk[10..]).await;

    let period = "from=2026-11-30T16:00:00Z&to=2026-12-31T16:00:00Z";
    let coverage = |token: String| {
        let app = &app;
        async move {
            let (status, c) = app
                .get(&format!("/v1/zones/{zone}/coverage?{period}"), Some(&token))
                .await;
            assert_eq!(status, StatusCode::OK, "{c}");
            c
        }
    };
    let sup = coverage(sup_token.clone()).await;
    let chief = coverage(app.login("roadchief1").await).await;
    assert_eq!(sup["tracks"].as_array().unwrap().len(), 2, "{sup}");
    assert_eq!(chief["tracks"].as_array().unwrap().len(), 1, "{chief}");
    assert_eq!(chief["tracks"][0]["kind"], "routine");
    assert_eq!(sup["cells"], chief["cells"]);
    let (all, some) = (
        sup["cells_covered"].as_u64().unwrap(),
        chief["cells_covered"].as_u64().unwrap(),
    );
    assert!(some > 0 && all > some, "supervisor {all}, chief {some}");
    assert!(sup["percent"].as_f64().unwrap() > chief["percent"].as_f64().unwrap());

    // The console says the same, and draws one line for the chief and two for the supervisor.
    let month = format!("/console/coverage?zone={zone}&month=2026-12");
    let (status, page) = Browser::sign_in(&app, "roadchief1")
        .await
        .get(&app, &month)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<polyline").count(), 1, "{page}");
    assert!(
        page.contains(&format!("{some} of {}", chief["cells"])),
        "{page}"
    );
    let (_, page) = Browser::sign_in(&app, "supervisor1")
        .await
        .get(&app, &month)
        .await;
    assert_eq!(page.matches("<polyline").count(), 2);

    // A zone outside the chief's scope cannot be asked for.
    let chief_token = app.login("roadchief1").await;
    let (_, theirs) = app.get("/v1/zones", Some(&chief_token)).await;
    let theirs: Vec<&str> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["id"].as_str().unwrap())
        .collect();
    let other = app
        .zones
        .values()
        .find(|z| !theirs.contains(&z.to_string().as_str()))
        .expect("a zone outside the chief's scope");
    let (status, _) = app
        .get(
            &format!("/v1/zones/{other}/coverage?{period}"),
            Some(&chief_token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = Browser::sign_in(&app, "roadchief1")
        .await
        .get(
            &app,
            &format!("/console/coverage?zone={other}&month=2026-12"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(
            &format!("/v1/zones/{zone}/coverage?from=2026-12-31T16:00:00Z&to=2026-11-30T16:00:00Z"),
            Some(&chief_token),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

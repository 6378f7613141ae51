//! Reference data and scope: the roster decides what each user sees and writes.

use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::json;

on_both_backends!(
    inspector_sees_and_writes_only_their_zone,
    csv_import_with_one_bad_row_imports_nothing,
    roster_changes_close_old_rows_and_move_scope,
    admin_changes_are_audited,
    zone_boundaries_are_validated,
);

async fn inspector_sees_and_writes_only_their_zone(app: TestApp) {
    let admin = app.login("admin").await;
    let (_, all) = app.get("/v1/zones", Some(&admin)).await;
    assert_eq!(all.as_array().unwrap().len(), 8);
    assert!(all[0]["boundary"]["coordinates"].is_array());

    let inspector = app.login("inspector1").await; // Z01
    let (status, zones) = app.get("/v1/zones", Some(&inspector)).await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = zones
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["Z01"]);

    let z1 = app.zone("Z01");
    let z2 = app.zone("Z02");
    assert_eq!(
        app.get(&format!("/v1/zones/{z1}"), Some(&inspector))
            .await
            .0,
        StatusCode::OK
    );
    // Another zone: as if it did not exist.
    let (status, body) = app.get(&format!("/v1/zones/{z2}"), Some(&inspector)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    assert_eq!(
        app.get(&format!("/v1/assets?zone_id={z2}"), Some(&inspector))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (_, page) = app.get("/v1/assets?limit=1000", Some(&inspector)).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 40);
    assert!(items.iter().all(|a| a["zone_id"] == json!(z1)));
    let (_, page) = app.get("/v1/assets?limit=1000", Some(&admin)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 320);
    let foreign = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["zone_id"] == json!(z2))
        .unwrap();
    let code = foreign["code"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/assets/{code}"), Some(&inspector))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // The roster and coefficients are filtered the same way.
    let (_, roster) = app.get("/v1/roster", Some(&inspector)).await;
    assert!(roster
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["zone_id"].is_null() || r["zone_id"] == json!(z1)));

    // Writes: reference data is the admin's.
    let (status, body) = app
        .put(
            &format!("/v1/zones/{z1}"),
            Some(&inspector),
            &json!({"code": "Z01", "name": "x", "boundary": all[0]["boundary"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "forbidden");
    let (status, _) = app
        .post_raw(
            "/v1/assets/import",
            Some(&inspector),
            "text/csv",
            b"code,zone_code,category_code,name,lat,lon\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A supervisor rostered for every zone sees all eight.
    let supervisor = app.login("supervisor1").await;
    assert_eq!(
        app.get("/v1/zones", Some(&supervisor))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

async fn csv_import_with_one_bad_row_imports_nothing(app: TestApp) {
    let admin = app.login("admin").await;
    let before = app.get("/v1/assets?limit=1000", Some(&admin)).await.1["items"]
        .as_array()
        .unwrap()
        .len();
    let csv = "code,zone_code,category_code,name,lat,lon\n\
               1101080101900001,Z01,0101,New cover 1,39.901,116.301\n\
               1101080101900002,Z09,0101,Cover in no zone,39.902,116.302\n\
               1101080118900003,Z02,0118,New lamp,39.903,116.315\n";
    let (status, body) = app
        .post_raw(
            "/v1/assets/import",
            Some(&admin),
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "import_failed");
    let errors = body["details"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["column"], "zone_code");
    let after = app.get("/v1/assets?limit=1000", Some(&admin)).await.1["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing imported");

    // Fixed, the same file imports whole.
    let fixed = csv.replace(",Z09,", ",Z01,");
    let (status, body) = app
        .post_raw(
            "/v1/assets/import",
            Some(&admin),
            "text/csv",
            fixed.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["imported"], 3);
    let (status, body) = app.get("/v1/assets/1101080118900003", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["category_code"], "component:0118");

    // Importing it again: every row is a duplicate, and each is reported.
    let (status, body) = app
        .post_raw(
            "/v1/assets/import",
            Some(&admin),
            "text/csv",
            csv.replace(",Z09,", ",Z01,").into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["errors"].as_array().unwrap().len(), 3);

    // A wrong header is one clear error.
    let (status, body) = app
        .post_raw(
            "/v1/assets/import",
            Some(&admin),
            "text/csv",
            b"a,b\n1,2\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["errors"][0]["line"], 1);
}

async fn roster_changes_close_old_rows_and_move_scope(app: TestApp) {
    let admin = app.login("admin").await;
    let (_, me) = app
        .get("/v1/me", Some(&app.login("inspector1").await))
        .await;
    let user_id = me["id"].as_str().unwrap().to_owned();
    let (_, rows) = app
        .get(&format!("/v1/roster?user_id={user_id}"), Some(&admin))
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let old_id = rows[0]["id"].as_str().unwrap().to_owned();

    let z3 = app.zone("Z03");
    let (status, new_row) = app
        .post(
            &format!("/v1/roster/{old_id}/reassign"),
            Some(&admin),
            &json!({"zone_id": z3, "role": "inspector"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{new_row}");
    assert_eq!(new_row["zone_id"], json!(z3));

    // History keeps both rows; the old one is closed, not edited.
    let (_, history) = app
        .get(
            &format!("/v1/roster?user_id={user_id}&all=true"),
            Some(&admin),
        )
        .await;
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    let old = history.iter().find(|r| r["id"] == json!(old_id)).unwrap();
    assert!(old["valid_to"].is_string());
    assert_eq!(old["zone_id"], json!(app.zone("Z01")));

    // Scope follows the roster at once.
    let inspector = app.login("inspector1").await;
    let (_, zones) = app.get("/v1/zones", Some(&inspector)).await;
    assert_eq!(zones[0]["code"], "Z03");
    assert_eq!(zones.as_array().unwrap().len(), 1);

    // Ending an ended assignment is a conflict; a role the user lacks is refused.
    let (status, _) = app
        .post(
            &format!("/v1/roster/{old_id}/end"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = app
        .post(
            "/v1/roster",
            Some(&admin),
            &json!({"user_id": user_id, "zone_id": z3, "role": "supervisor"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["path"], "role");
}

async fn admin_changes_are_audited(app: TestApp) {
    let admin = app.login("admin").await;
    let z1 = app.zone("Z01");
    let (_, zone) = app.get(&format!("/v1/zones/{z1}"), Some(&admin)).await;
    let (status, _) = app
        .put(
            &format!("/v1/zones/{z1}"),
            Some(&admin),
            &json!({"code": "Z01", "name": "Renamed", "boundary": zone["boundary"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, periods) = app.get("/v1/periods", Some(&admin)).await;
    let period = periods[0]["id"].as_str().unwrap();
    let (status, body) = app
        .put(
            &format!("/v1/periods/{period}/coefficients/{z1}"),
            Some(&admin),
            &json!({"coefficient": 1.25}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, log) = app.get("/v1/audit?entity=zone", Some(&admin)).await;
    let rec = &log["items"][0];
    assert_eq!(rec["action"], "zone.update");
    assert_eq!(rec["before"]["name"], zone["name"]);
    assert_eq!(rec["after"]["name"], "Renamed");
    assert!(rec["actor_id"].is_string());
    let (_, log) = app
        .get("/v1/audit?entity=zone_coefficient", Some(&admin))
        .await;
    assert_eq!(log["items"][0]["before"]["coefficient"], 1.0);
    assert_eq!(log["items"][0]["after"]["coefficient"], 1.25);

    // The audit log is the admin's only.
    assert_eq!(
        app.get("/v1/audit", Some(&app.login("supervisor1").await))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Coefficients refuse more than three decimals rather than rounding.
    let (status, body) = app
        .put(
            &format!("/v1/periods/{period}/coefficients/{z1}"),
            Some(&admin),
            &json!({"coefficient": 1.2345}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["path"], "coefficient");
}

async fn zone_boundaries_are_validated(app: TestApp) {
    let admin = app.login("admin").await;
    let open_ring =
        json!({"type": "Polygon", "coordinates": [[[116.0, 39.0], [116.1, 39.0], [116.1, 39.1]]]});
    let (status, body) = app
        .post(
            "/v1/zones",
            Some(&admin),
            &json!({"code": "Z09", "name": "New", "boundary": open_ring}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["path"], "boundary");
    let ok = json!({"type": "Polygon", "coordinates": [[[116.0, 39.0], [116.1, 39.0], [116.1, 39.1], [116.0, 39.0]]]});
    let (status, _) = app
        .post(
            "/v1/zones",
            Some(&admin),
            &json!({"code": "Z09", "name": "New", "boundary": ok}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .post(
            "/v1/zones",
            Some(&admin),
            &json!({"code": "Z09", "name": "Again", "boundary": ok}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

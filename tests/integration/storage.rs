//! What the database holds is read back as it is, or refused with an error that names the
//! column and the value: never guessed. A case whose stored state no code knows must not be
//! served as `reported`, nor a damaged id as the nil UUID.

use gridline_testkit::gridline_server::store;
use gridline_testkit::gridline_server::store::changes;
use gridline_testkit::{new_case, on_both_backends, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

on_both_backends!(
    unknown_text_in_a_case_row_is_a_clear_error_not_a_guess,
    a_damaged_id_or_history_value_elsewhere_is_a_clear_error_too,
    unknown_names_in_reference_data_are_errors_not_defaults,
    unknown_statuses_and_kinds_are_errors_not_defaults,
);

/// A case pushed from a phone: its id and the phone's device id.
async fn stored_case(app: &TestApp) -> (Uuid, Uuid) {
    let mut phone = Phone::enrol(app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = phone.op("case.create@1", payload);
    let (status, body) = phone.push(app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (case_id, phone.device_id)
}

/// Writes `value` into one column of the case's row, behind the server's back.
async fn overwrite(app: &TestApp, case_id: Uuid, column: &str, value: &str) {
    sqlx::query(&format!("UPDATE cases SET {column} = $1 WHERE id = $2"))
        .bind(value.to_owned())
        .bind(case_id.to_string())
        .execute(&app.state.db.pool)
        .await
        .expect("update");
}

async fn unknown_text_in_a_case_row_is_a_clear_error_not_a_guess(app: TestApp) {
    let (case_id, device_id) = stored_case(&app).await;
    let admin = app.login("admin").await;
    let (status, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["state"], "reported");

    let device_id = device_id.to_string();
    for (column, value, good) in [
        ("state", "archived", "reported"),
        ("severity", "catastrophic", "medium"),
        ("device_id", "not-a-uuid", device_id.as_str()),
        ("flags", "not json", "[]"),
    ] {
        overwrite(&app, case_id, column, value).await;

        // The storage layer names the column and the value.
        let err = store::cases::get(&app.state.db.pool, case_id)
            .await
            .expect_err(&format!(
                "a case row with {column} = {value:?} must not decode"
            ))
            .to_string();
        assert!(
            err.contains(column) && err.contains(value),
            "{column}: the error should name the column and the value: {err}"
        );

        // The API answers an error rather than a guessed case (the list and the one case).
        let (status, body) = app.get(&format!("/v1/cases/{case_id}"), Some(&admin)).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{column}: {body}"
        );
        assert_eq!(body["code"], "internal", "{body}");
        let (status, body): (StatusCode, Value) = app.get("/v1/cases", Some(&admin)).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{column}: {body}"
        );

        overwrite(&app, case_id, column, good).await;
        let (status, body) = app.get(&format!("/v1/cases/{case_id}"), Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{column} restored: {body}");
    }
}

/// Runs `sql` with `$1 = value`, `$2 = id` behind the server's back, with foreign keys off for
/// that one connection: a damaged id could not pass them, but a bad restore or a hand edit can.
async fn damage(app: &TestApp, sql: &str, value: &str, id: Uuid) {
    let (off, on) = match app.state.db.backend {
        store::Backend::Sqlite => ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON"),
        store::Backend::Postgres => (
            "SET session_replication_role = replica",
            "SET session_replication_role = origin",
        ),
    };
    let mut conn = app.state.db.pool.acquire().await.expect("connection");
    sqlx::query(off)
        .execute(&mut *conn)
        .await
        .expect("keys off");
    sqlx::query(sql)
        .bind(value.to_owned())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .expect("update");
    sqlx::query(on).execute(&mut *conn).await.expect("keys on");
}

/// Ids outside the case row and the field history (which decides conflicts) are decoded as
/// strictly: a device whose owner id is damaged is not listed with the nil UUID, and an edit
/// against a case whose history holds an unknown severity is not resolved against a guess.
async fn a_damaged_id_or_history_value_elsewhere_is_a_clear_error_too(app: TestApp) {
    let (case_id, device_id) = stored_case(&app).await;
    let admin = app.login("admin").await;

    damage(
        &app,
        "UPDATE devices SET user_id = $1 WHERE id = $2",
        "not-a-uuid",
        device_id,
    )
    .await;
    let err = store::devices::list(&app.state.db.pool, None)
        .await
        .expect_err("a device row with a damaged user id must not decode")
        .to_string();
    assert!(
        err.contains("user_id") && err.contains("not-a-uuid"),
        "{err}"
    );
    let (status, body) = app.get("/v1/devices", Some(&admin)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "internal", "{body}");
    damage(
        &app,
        "UPDATE devices SET user_id = (SELECT id FROM users WHERE username = $1) WHERE id = $2",
        "inspector1",
        device_id,
    )
    .await;
    let (status, body) = app.get("/v1/devices", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "restored: {body}");

    damage(
        &app,
        "UPDATE case_field_history SET value = $1 WHERE case_id = $2 AND field = 'severity'",
        "\"catastrophic\"",
        case_id,
    )
    .await;
    let mut conn = app.state.db.pool.acquire().await.expect("connection");
    let err = store::cases::history_many(&mut conn, &[case_id])
        .await
        .expect_err("a history value no severity has must not decode")
        .to_string();
    drop(conn);
    assert!(
        err.contains("severity") && err.contains("catastrophic"),
        "{err}"
    );
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let edit = phone.op(
        "case.edit@1",
        serde_json::json!({"case_id": case_id, "base_version": 1, "changes": {"description": "again"}}),
    );
    let (status, body) = phone.push(&app, &[edit]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "internal", "{body}");
}

/// Reference data is read as strictly: a taxonomy entry of an unknown kind or work category, a
/// roster role or user role no code knows, and a zone boundary that is not JSON are errors,
/// not an event of municipal facilities, an inspector or a zone without a boundary.
async fn unknown_names_in_reference_data_are_errors_not_defaults(app: TestApp) {
    let admin = app.login("admin").await;
    let pool = &app.state.db.pool;
    let zone = app.zone("Z01").to_string();
    let cases: [(&str, &str, &str, &str, &str); 5] = [
        ("/v1/taxonomy", "taxonomy", "kind", "key", "event:0102"),
        (
            "/v1/taxonomy",
            "taxonomy",
            "work_category",
            "key",
            "event:0102",
        ),
        ("/v1/zones", "zones", "boundary", "id", zone.as_str()),
        ("/v1/roster", "roster", "role", "role", "road_chief"),
        ("/v1/users", "users", "roles", "username", "inspector1"),
    ];
    for (path, table, column, key, value) in cases {
        let (status, body) = app.get(path, Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{path} before: {body}");
        let before: String =
            sqlx::query_scalar(&format!("SELECT {column} FROM {table} WHERE {key} = $1"))
                .bind(value)
                .fetch_one(pool)
                .await
                .expect("the row to damage");
        let sql = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2");
        let damaged = if column == "boundary" {
            "{not json"
        } else {
            "astronaut"
        };
        sqlx::query(&sql)
            .bind(damaged)
            .bind(value)
            .execute(pool)
            .await
            .expect("damage");
        let (status, body) = app.get(path, Some(&admin)).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{table}.{column} = {damaged:?} must not be read as a default: {body}"
        );
        assert_eq!(body["code"], "internal", "{body}");
        // A row found by the damaged column is found again by its damaged value.
        let now_found_by = if key == column { damaged } else { value };
        sqlx::query(&sql)
            .bind(&before)
            .bind(now_found_by)
            .execute(pool)
            .await
            .expect("restore");
        let (status, body) = app.get(path, Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{path} restored: {body}");
    }
}

/// Statuses and kinds are read as strictly: a proposal whose status, a period whose status or a
/// change-log row whose entity or kind no code knows is an error naming the column and the
/// value, not a pending proposal, an open period or a row a pull skips.
async fn unknown_statuses_and_kinds_are_errors_not_defaults(app: TestApp) {
    let admin = app.login("admin").await;
    let sup = app.login("supervisor1").await;
    let pool = &app.state.db.pool;
    let (status, proposal) = app
        .post(
            "/v1/deductions",
            Some(&sup),
            &serde_json::json!({"zone_id": app.zone("Z01"), "source": "media",
                "rule_code": "MEDIA", "note": "evening news"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    let proposal_id: Uuid = proposal["id"].as_str().unwrap().parse().unwrap();
    let (status, period) = app.get("/v1/periods", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{period}");
    let period_id = period[0]["id"].as_str().unwrap().to_owned();
    // A row every pull reads: reference data, for no zone and no one user.
    let last_change: i64 = sqlx::query_scalar(
        "SELECT MAX(seq) FROM changes WHERE zone_id IS NULL AND user_id IS NULL",
    )
    .fetch_one(pool)
    .await
    .expect("a change-log row");
    let phone = Phone::enrol(&app, "inspector1").await;

    // (table, column, key column, key, the text stored, the API path that reads it)
    let rows: [(&str, &str, &str, String, &str, &str); 4] = [
        (
            "deduction_proposals",
            "status",
            "id",
            proposal_id.to_string(),
            "withdrawn",
            "/v1/deductions",
        ),
        (
            "periods",
            "status",
            "id",
            period_id,
            "archived",
            "/v1/periods",
        ),
        (
            "changes",
            "entity",
            "seq",
            last_change.to_string(),
            "spaceship",
            "/v1/sync/pull",
        ),
        (
            "changes",
            "kind",
            "seq",
            last_change.to_string(),
            "moved",
            "/v1/sync/pull",
        ),
    ];
    for (table, column, key, id, damaged, path) in rows {
        let select = format!("SELECT {column} FROM {table} WHERE CAST({key} AS TEXT) = $1");
        let before: String = sqlx::query_scalar(&select)
            .bind(&id)
            .fetch_one(pool)
            .await
            .expect("the row to damage");
        let update = format!("UPDATE {table} SET {column} = $1 WHERE CAST({key} AS TEXT) = $2");
        sqlx::query(&update)
            .bind(damaged)
            .bind(&id)
            .execute(pool)
            .await
            .expect("damage");

        // The storage layer names the column and the value.
        let err = match table {
            "deduction_proposals" => store::ledger::proposal(pool, proposal_id).await.map(|_| ()),
            "periods" => store::reference::periods(pool).await.map(|_| ()),
            _ => {
                let mut reader = app.state.db.reader().await.expect("a reader");
                changes::since(&mut reader.reader(), 0, None, 100_000)
                    .await
                    .map(|_| ())
            }
        }
        .expect_err(&format!("{table}.{column} = {damaged:?} must not decode"))
        .to_string();
        assert!(
            err.contains(&format!("{table}.{column}")) && err.contains(damaged),
            "{table}.{column}: the error should name the column and the value: {err}"
        );

        // The API answers an error, not a guess.
        if path == "/v1/sync/pull" {
            assert_eq!(
                pull_status(&app, &phone).await,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{table}.{column}"
            );
        } else {
            let (status, body) = app.get(path, Some(&admin)).await;
            assert_eq!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{table}.{column}: {body}"
            );
            assert_eq!(body["code"], "internal", "{body}");
        }

        sqlx::query(&update)
            .bind(&before)
            .bind(&id)
            .execute(pool)
            .await
            .expect("restore");
        if path == "/v1/sync/pull" {
            assert_eq!(
                pull_status(&app, &phone).await,
                StatusCode::OK,
                "{table}.{column}"
            );
        } else {
            let (status, body) = app.get(path, Some(&admin)).await;
            assert_eq!(status, StatusCode::OK, "{table}.{column} restored: {body}");
        }
    }
}

/// Pulls every page from the start: the first status other than 200, else 200.
async fn pull_status(app: &TestApp, phone: &Phone) -> StatusCode {
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/sync/pull?protocol=1&limit=200".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = app.get(&path, Some(&phone.token)).await;
        if status != StatusCode::OK || !body["has_more"].as_bool().expect("has_more") {
            return status;
        }
        cursor = Some(body["cursor"].as_str().expect("cursor").to_owned());
    }
}

/// Both backends have the same numbered migrations, each number once and each the same text
/// unless the dialects part: a change to the schema is made for both, and two changes made side
/// by side cannot take the same version (sqlx would refuse to start on a database that has
/// either).
#[test]
fn migrations_are_numbered_once_and_the_same_for_both_backends() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/migrations");
    let names = |backend: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(backend))
            .expect("migrations folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    };
    let (sqlite, postgres) = (names("sqlite"), names("postgres"));
    assert_eq!(sqlite, postgres, "the two backends' migrations differ");
    // Each migration is one text for both backends, except where the dialects part; a copy
    // edited on one side only fails here, and so does a listed exception that is identical.
    const DIALECT_SPECIFIC: &[(&str, &str)] = &[
        (
            "0004_ledger.sql",
            "the append-only and closed-period triggers",
        ),
        ("0009_ledger_log.sql", "the checkpoint log's triggers"),
        (
            "0012_sync_op_id_reuse.sql",
            "rebuilding a unique index as a partial one",
        ),
    ];
    for name in &sqlite {
        let text = |backend: &str| std::fs::read(dir.join(backend).join(name)).expect("migration");
        let same = text("sqlite") == text("postgres");
        match DIALECT_SPECIFIC.iter().find(|(n, _)| n == name) {
            None => assert!(same, "{name} differs between the backends; write it once"),
            Some((_, why)) => assert!(
                !same,
                "{name} is listed as dialect-specific ({why}) but is the same for both"
            ),
        }
    }
    let mut versions: Vec<&str> = sqlite
        .iter()
        .map(|n| n.split('_').next().unwrap_or(""))
        .collect();
    let count = versions.len();
    versions.dedup();
    assert_eq!(
        versions.len(),
        count,
        "a migration version is used twice: {sqlite:?}"
    );
}

//! The checkers themselves must be able to fail: each is shown a loss, a duplicate, corrupt
//! bytes or a broken chain and must report it.

use std::time::Duration;

use uuid::Uuid;

use super::{
    check_exactly_once, check_ledger, check_photos, AckedApproval, ExpectedDevice, ExpectedPhoto,
    SimPhone,
};

/// The checker itself must be able to fail: a lost operation, a duplicated effect and a
/// partial case are each caught.
#[tokio::test]
async fn the_exactly_once_check_catches_loss_duplication_and_partial_state() {
    use futures::FutureExt;
    use gridline_testkit::{new_case, Db, Phone, TestApp};

    let app = TestApp::on(Db::Sqlite).await.expect("app");
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let ops = vec![
        phone.op("case.create@1", payload),
        phone.op(
            "case.comment@1",
            serde_json::json!({"case_id": case_id, "comment_id": Uuid::now_v7(), "text": "x"}),
        ),
    ];
    assert_eq!(phone.push(&app, &ops).await.0, reqwest::StatusCode::OK);
    let pool = &app.state.db.pool;
    let honest = ExpectedDevice::from_ops(phone.device_id, ops.clone());
    assert_eq!(
        check_exactly_once(pool, std::slice::from_ref(&honest))
            .await
            .operations,
        2
    );

    let fails = |devices: Vec<ExpectedDevice>| async move {
        std::panic::AssertUnwindSafe(check_exactly_once(pool, &devices))
            .catch_unwind()
            .await
            .is_err()
    };
    // The phone holds an operation the server lost.
    let mut more = ops.clone();
    more.push(phone.op(
        "case.create@1",
        new_case(app.zone("Z01"), 0, "event:0102").1,
    ));
    assert!(fails(vec![ExpectedDevice::from_ops(phone.device_id, more)]).await);
    // An effect applied twice: a second comment event on the case.
    sqlx::query(
        "INSERT INTO case_events (id, case_id, version, kind, actor_id, at) \
         VALUES ($1, $2, 3, 'comment', $3, 0)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(case_id.to_string())
    .bind(Uuid::now_v7().to_string())
    .execute(pool)
    .await
    .expect("insert");
    assert!(fails(vec![honest.clone()]).await);
    // A partial case: its photo manifest gone.
    sqlx::query("DELETE FROM case_events WHERE version = 3")
        .execute(pool)
        .await
        .expect("delete");
    assert_eq!(
        check_exactly_once(pool, std::slice::from_ref(&honest))
            .await
            .operations,
        2
    );
    sqlx::query("DELETE FROM case_photos")
        .execute(pool)
        .await
        .expect("delete");
    assert!(fails(vec![honest]).await);
}

/// Whether `f` panics (a checker finding a problem).
async fn panics(f: impl std::future::Future) -> bool {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .is_err()
}

/// The photo and ledger checkers must be able to fail: a photo acknowledged but unknown, its
/// bytes gone or corrupt in the store, an acknowledged approval missing from the ledger, a
/// broken chain and a duplicated deduction are each caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_photo_and_ledger_checks_catch_lost_or_corrupt_bytes_a_broken_chain_and_duplicates() {
    use gridline_testkit::TestApp;
    use object_store::path::Path;

    // The desk's one supervisor proposes and approves: a one-person office.
    let app = TestApp::builder()
        .config(|c| c.deductions.four_eyes = false)
        .spawn()
        .await
        .expect("app");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut phone = SimPhone::enrol(&app.base, "inspector1", app.zone("Z01"), 0, deadline)
        .await
        .with_photos();
    phone.capture(1).await;
    phone.drain(deadline).await;
    let photos = phone.expected_photos().await;
    assert_eq!(photos.len(), 1);
    assert!(photos[0].acknowledged, "{photos:?}");
    let pool = &app.state.db.pool;
    let blobs = app.state.blobs.as_ref();
    assert_eq!(check_photos(pool, blobs, &photos).await.acknowledged, 1);

    // A photo acknowledged that the server never stored.
    let mut unknown = photos.clone();
    unknown.push(ExpectedPhoto {
        sha256: "ab".repeat(32),
        size: 10,
        acknowledged: true,
    });
    assert!(panics(check_photos(pool, blobs, &unknown)).await);
    // Its bytes lost from the store, then corrupted.
    let key = gridline_server::photos::original_path(&photos[0].sha256);
    let original = blobs.get(&key).await.unwrap().bytes().await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert!(panics(check_photos(pool, blobs, &photos)).await);
    let mut corrupt = original.to_vec();
    corrupt[100] ^= 1;
    blobs.put(&key, corrupt.into()).await.unwrap();
    assert!(panics(check_photos(pool, blobs, &photos)).await);
    // A half-recorded upload: a piece on record that the store does not hold.
    blobs.put(&key, original.clone().into()).await.unwrap();
    check_photos(pool, blobs, &photos).await;
    let upload = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO uploads (id, sha256, length, received, state, metadata, created_by, \
         created_at, expires_at) VALUES ($1, $2, 100, 50, 'receiving', '', 'x', 0, 0)",
    )
    .bind(&upload)
    .bind("cd".repeat(32))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO upload_parts (upload_id, start, length, object_key) VALUES ($1, 0, 50, $2)",
    )
    .bind(&upload)
    .bind(format!("uploads/{upload}/piece"))
    .execute(pool)
    .await
    .unwrap();
    assert!(panics(check_photos(pool, blobs, &photos)).await);
    blobs
        .put(
            &Path::from(format!("uploads/{upload}/piece")),
            vec![0u8; 50].into(),
        )
        .await
        .unwrap();
    check_photos(pool, blobs, &photos).await;

    // The supervisor approves a deduction on the case.
    let mut supervisor = super::supervisor::Supervisor::new(&app.base, 1);
    supervisor.drain(deadline).await;
    assert!(supervisor.wrong.is_empty(), "{:?}", supervisor.wrong);
    let approvals = supervisor.approvals.clone();
    assert_eq!(approvals.len(), 1);
    assert_eq!(check_ledger(pool, &approvals).await.entries, 1);
    // An approval acknowledged that the ledger does not hold.
    let mut lost = approvals.clone();
    lost.push(AckedApproval {
        entry_id: Uuid::now_v7(),
        ..approvals[0].clone()
    });
    assert!(panics(check_ledger(pool, &lost)).await);
    // A tampered entry breaks the chain.
    sqlx::query("DROP TRIGGER ledger_entries_no_update")
        .execute(pool)
        .await
        .unwrap();
    let points: i64 =
        sqlx::query_scalar("SELECT weighted_points_milli FROM ledger_entries WHERE seq = 1")
            .fetch_one(pool)
            .await
            .unwrap();
    let set_points = |p: i64| {
        sqlx::query("UPDATE ledger_entries SET weighted_points_milli = $1 WHERE seq = 1")
            .bind(p)
            .execute(pool)
    };
    set_points(points + 1).await.unwrap();
    assert!(panics(check_ledger(pool, &approvals)).await);
    set_points(points).await.unwrap();
    check_ledger(pool, &approvals).await;
    // A second deduction posted for the same case (a retried proposal that duplicated). The
    // API refuses one now (`case_already_deducted`), so it is written into the database as a
    // server without that rule would have: an approved proposal that does not hold the case,
    // and its entry, appended to the chain properly.
    let token = app.login("supervisor1").await;
    let (status, refused) = app
        .post(
            "/v1/deductions",
            Some(&token),
            &serde_json::json!({"case_id": approvals[0].case_id, "rule_code": "INSP-GARBAGE"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{refused}");
    let (again, again_entry) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    sqlx::query(
        "INSERT INTO deduction_proposals (id, case_id, zone_id, period_id, source, rulebook_id, \
         rule_code, raw_points_milli, category_code, found_at, note, status, proposed_by, \
         proposed_at, decided_by, decided_at, ledger_entry_id) SELECT $1, case_id, zone_id, \
         period_id, source, rulebook_id, rule_code, raw_points_milli, category_code, found_at, \
         note, status, proposed_by, proposed_at, decided_by, decided_at, $2 \
         FROM deduction_proposals WHERE id = $3",
    )
    .bind(&again)
    .bind(&again_entry)
    .bind(approvals[0].proposal_id.to_string())
    .execute(pool)
    .await
    .unwrap();
    let first = gridline_server::store::ledger::entry(pool, approvals[0].entry_id)
        .await
        .unwrap()
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    gridline_server::store::ledger::append(
        &mut conn,
        gridline_server::ledger::chain::Entry {
            id: again_entry,
            proposal_id: Some(again),
            ..first
        },
    )
    .await
    .unwrap();
    drop(conn);
    // The chain itself is sound: the duplicate is what the check must catch.
    let (_, first_bad) = gridline_server::store::ledger::verify_chain(pool)
        .await
        .unwrap();
    assert_eq!(first_bad, None);
    assert!(panics(check_ledger(pool, &approvals)).await);
}

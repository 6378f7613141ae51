//! The pull cursor cannot skip a change committed concurrently.
//!
//! Transactions commit out of order. If change numbers were taken when a transaction starts
//! (a plain sequence), a puller could read number 2 (committed) while number 1 is still in
//! flight, move its cursor to 2, and never see 1. These tests run concurrent writers against a
//! puller and check that every change is delivered; one of them shows, deterministically, that
//! the same check catches a naive sequence.

use std::collections::HashSet;
use std::time::Duration;

use gridline_sync::EntityKind;
use gridline_testkit::gridline_server::store::changes::{self, PendingChange};
use gridline_testkit::{on_both_backends, Phone, TestApp};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;

on_both_backends!(concurrent_writers_never_skip_a_change_in_the_pull);

/// Many writers, each transaction holding its change number while it does more work before
/// committing; a device pulls continuously through the HTTP endpoint.
async fn concurrent_writers_never_skip_a_change_in_the_pull(app: TestApp) {
    let phone = Phone::enrol(&app, "supervisor1").await;
    let (_, mut cursor) = phone.pull_all(&app, None).await;

    const WRITERS: usize = 6;
    const TXS: usize = 25;
    let mut expected = HashSet::new();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let db = app.state.db.clone();
        let ids: Vec<String> = (0..TXS)
            .map(|t| format!("w{w}-t{t}-{}", uuid::Uuid::new_v4()))
            .collect();
        expected.extend(ids.iter().cloned());
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            for id in ids {
                let mut tx = db.begin_write().await.expect("begin");
                changes::append(
                    tx.conn(),
                    &[PendingChange::tombstone(EntityKind::Period, id, None)],
                )
                .await
                .expect("append");
                // Keep the transaction open a little while after numbering, doing real work.
                for _ in 0..rng.gen_range(0..4) {
                    sqlx::query("SELECT COUNT(*) FROM taxonomy")
                        .fetch_one(&mut *tx.conn())
                        .await
                        .expect("work");
                }
                tx.commit().await.expect("commit");
            }
        }));
    }

    let mut seen = HashSet::new();
    let mut done = false;
    while !done {
        done = writers.iter().all(|w| w.is_finished());
        // After the writers finish, one more full drain.
        let (status, body) = app
            .get(
                &format!("/v1/sync/pull?protocol=1&limit=17&cursor={cursor}"),
                Some(&phone.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for c in body["changes"].as_array().unwrap() {
            seen.insert(c["id"].as_str().unwrap().to_owned());
        }
        cursor = body["cursor"].as_str().unwrap().to_owned();
        if body["has_more"] == true {
            done = false;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.expect("writer");
    }
    let (rest, _) = phone.pull_all(&app, Some(cursor)).await;
    for c in &rest {
        seen.insert(c["id"].as_str().unwrap().to_owned());
    }
    let missing: Vec<&String> = expected.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} changes were skipped by the pull: {missing:?}",
        missing.len(),
        expected.len()
    );
}

/// Up to 100 changes after `after`, every zone, as the pull reads them.
async fn page_after(app: &TestApp, after: i64) -> Vec<changes::ChangeRow> {
    let mut reader = app.state.db.reader().await.unwrap();
    changes::since(&mut reader.reader(), after, None, 100)
        .await
        .unwrap()
}

/// One interleaving, forced step by step: transaction A numbers its change, then B numbers and
/// commits while A is still open, and the puller reads in between. With the real change log, B
/// cannot even number its change before A commits, so nothing is skipped; with a naive sequence
/// the puller provably skips A's change. This is the check above, shown able to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_sequence_cursor_skips_an_in_flight_change_and_ours_does_not() {
    let Some(app) = TestApp::on(gridline_testkit::Db::Postgres).await else {
        return;
    };
    let pool = app.state.db.pool.clone();

    // Ours.
    let mut a = app.state.db.begin_write().await.unwrap();
    changes::append(
        a.conn(),
        &[PendingChange::tombstone(EntityKind::Period, "ours-A", None)],
    )
    .await
    .unwrap();
    let start = changes::head(&pool).await.unwrap();
    let db = app.state.db.clone();
    let b = tokio::spawn(async move {
        let mut b = db.begin_write().await.unwrap();
        changes::append(
            b.conn(),
            &[PendingChange::tombstone(EntityKind::Period, "ours-B", None)],
        )
        .await
        .unwrap();
        b.commit().await.unwrap();
    });
    // B either committed already or is waiting for A; the puller reads now either way.
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while !b.is_finished() {
            tokio::task::yield_now().await
        }
    })
    .await;
    let first = page_after(&app, start).await;
    let cursor = first.last().map(|r| r.seq).unwrap_or(start);
    a.commit().await.unwrap();
    b.await.unwrap();
    let later = page_after(&app, cursor).await;
    let seen: HashSet<String> = first
        .iter()
        .chain(&later)
        .map(|r| r.entity_id.clone())
        .collect();
    assert!(
        seen.contains("ours-A") && seen.contains("ours-B"),
        "ours skipped a change: {seen:?}"
    );

    // Naive: numbers from a sequence taken at the start of the transaction.
    sqlx::query("CREATE SEQUENCE naive_seq START 1000000")
        .execute(&pool)
        .await
        .unwrap();
    let naive_insert = |id: &'static str| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            let seq: i64 = sqlx::query_scalar("SELECT nextval('naive_seq')")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO changes (seq, entity, entity_id, zone_id, kind, at) VALUES ($1, 'period', $2, NULL, 'tombstone', 0)")
                .bind(seq)
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx
        }
    };
    let naive_a = naive_insert("naive-A").await; // seq 1000000, not committed
    let naive_b = naive_insert("naive-B").await; // seq 1000001
    naive_b.commit().await.unwrap();
    let first = page_after(&app, 999_999).await;
    let cursor = first.last().map(|r| r.seq).unwrap_or(999_999);
    naive_a.commit().await.unwrap();
    let later = page_after(&app, cursor).await;
    let seen: HashSet<String> = first
        .iter()
        .chain(&later)
        .map(|r| r.entity_id.clone())
        .collect();
    assert!(seen.contains("naive-B"));
    assert!(
        !seen.contains("naive-A"),
        "the naive sequence should have skipped A: the test could not fail"
    );
}

/// The pull reads its pages on PostgreSQL through connections that plan every statement for its
/// own parameters. After five runs of a prepared statement PostgreSQL may switch to a generic
/// plan, and the generic plan of the change-log page read the global range through the primary
/// key, filtering every row after the cursor (a first sync quadratic in the zone's size). The
/// statements of a run of pages are all planned afresh, none generically.
#[tokio::test]
async fn postgres_pull_pages_are_planned_for_their_own_cursor() {
    use gridline_testkit::gridline_server::store::ReadConn;
    let Some(app) = TestApp::on(gridline_testkit::Db::Postgres).await else {
        return;
    };
    let zone = uuid::Uuid::new_v4().to_string();
    let mut tx = app.state.db.begin_write().await.unwrap();
    let batch: Vec<PendingChange> = (0..2000)
        .map(|i| PendingChange::tombstone(EntityKind::Case, format!("c{i}"), Some(zone.clone())))
        .collect();
    changes::append(tx.conn(), &batch).await.unwrap();
    tx.commit().await.unwrap();

    let mut reader = app.state.db.reader().await.unwrap();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = changes::since(
            &mut reader.reader(),
            cursor,
            Some(std::slice::from_ref(&zone)),
            100,
        )
        .await
        .unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        pages += 1;
    }
    assert!(pages >= 20, "{pages} pages");
    let ReadConn::Postgres(conn) = &mut reader else {
        panic!("a PostgreSQL reader");
    };
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%FROM changes WHERE zone_id IS NULL%'",
    )
    .fetch_one(&mut **conn)
    .await
    .unwrap();
    assert_eq!(generic, 0, "the page statement ran with a generic plan");
    assert!(custom > pages, "{custom} custom plans for {pages} pages");
}

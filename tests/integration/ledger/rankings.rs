//! Rankings: identical when recomputed and in every export, kept for an open period until
//! something is written, and ranked in SQL as the reference scoring ranks.

use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

on_both_backends!(
    rankings_are_identical_when_recomputed_and_exports_agree,
    an_open_period_s_ranking_is_kept_until_something_is_written,
    the_ranking_query_ranks_as_the_reference_scoring,
);

async fn rankings_are_identical_when_recomputed_and_exports_agree(app: TestApp) {
    let sup = app.login("supervisor1").await;
    for zone in ["Z02", "Z05", "Z05", "Z07"] {
        media_entry(&app, &sup, app.zone(zone)).await;
    }
    let period = current_period(&app, &sup).await;
    let pid = period["id"].as_str().unwrap().to_owned();
    let admin = app.login("admin").await;
    app.post(
        &format!("/v1/periods/{pid}/close"),
        Some(&admin),
        &json!({"early": true}),
    )
    .await;

    let path = format!("/v1/periods/{pid}/ranking");
    let (_, first) = get_bytes(&app, &path, &sup).await;
    let (_, second) = get_bytes(&app, &path, &sup).await;
    assert_eq!(first, second, "byte-identical when recomputed");
    let (_, stored, sha) = gridline_testkit::gridline_server::store::ledger::result(
        &app.state.db.pool,
        pid.parse().unwrap(),
    )
    .await
    .unwrap()
    .expect("stored at closing");
    assert_eq!(
        stored.as_bytes(),
        first.as_slice(),
        "the same bytes as stored when it closed"
    );
    use sha2::Digest;
    assert_eq!(sha, hex::encode(sha2::Sha256::digest(&first)));
    let ranking: Value = serde_json::from_slice(&first).unwrap();
    let z05 = ranking["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["zone_code"] == "Z05")
        .unwrap()
        .clone();
    // Two media reports at 2 points, Z05's coefficient 0.8: 100 − 3.2.
    assert_eq!(z05["score"], 96.8);
    assert_eq!(
        ranking["zones"].as_array().unwrap().last().unwrap()["zone_code"],
        "Z05"
    );

    // Ledger and ranking exports: the XLSX reads back with the same totals as the CSV.
    for what in ["ledger", "ranking"] {
        let column = header(if what == "ledger" {
            "weighted_points"
        } else {
            "score"
        });
        let (status, csv_bytes) = get_bytes(
            &app,
            &format!("/v1/exports/{what}?period_id={pid}&format=csv"),
            &sup,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
        let col = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == column)
            .unwrap();
        let csv_total: f64 = reader
            .records()
            .map(|r| r.unwrap()[col].parse::<f64>().unwrap())
            .sum();
        let (status, xlsx_bytes) = get_bytes(
            &app,
            &format!("/v1/exports/{what}?period_id={pid}&format=xlsx"),
            &sup,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        use calamine::Reader;
        let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx_bytes)).unwrap();
        let sheet = book.worksheet_range(what).unwrap();
        let mut rows = sheet.rows();
        let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
        let xcol = header.iter().position(|h| *h == column).unwrap();
        let mut n = 0;
        let xlsx_total: f64 = rows
            .map(|r| {
                n += 1;
                match &r[xcol] {
                    calamine::Data::Float(f) => *f,
                    calamine::Data::Int(i) => *i as f64,
                    other => panic!("not a number: {other:?}"),
                }
            })
            .sum();
        let expected_rows = if what == "ledger" { 4 } else { 8 };
        assert_eq!(n, expected_rows);
        assert!(
            (csv_total - xlsx_total).abs() < 1e-9,
            "{what}: {csv_total} vs {xlsx_total}"
        );
    }
    // 4 media reports weighted by 0.95, 0.8, 0.8, 0.7 (Z02, Z05, Z05, Z07).
    let (_, csv_bytes) = get_bytes(
        &app,
        &format!("/v1/exports/ledger?period_id={pid}&format=csv"),
        &sup,
    )
    .await;
    let text = String::from_utf8(csv_bytes).unwrap();
    assert_eq!(text.lines().count(), 5);
}

/// An open period's ranking is kept between requests (`ledger::rankings`) and recomputed as
/// soon as the ledger or the change log moves: a row slipped into the database behind the
/// server's back does not show, the next entry posted brings it in with the entry.
async fn an_open_period_s_ranking_is_kept_until_something_is_written(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let period = current_period(&app, &sup).await;
    let path = format!("/v1/periods/{}/ranking", period["id"].as_str().unwrap());
    let z05 = |ranking: &Value| -> Value {
        ranking["zones"]
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone_code"] == "Z05")
            .unwrap()
            .clone()
    };
    let (_, before) = app.get(&path, Some(&sup)).await;
    assert_eq!(z05(&before)["indicators"]["cases_found"], 0, "{before}");

    // A case found now in Z05, written straight into the table: no entry, no change.
    let now = gridline_testkit::gridline_server::store::now_ms();
    sqlx::query(
        "INSERT INTO cases (id, zone_id, reporter_id, source, state, category_code, description, \
         severity, lat, lon, accuracy_m, captured_at, queued_at, received_at, version, flags, \
         created_at, updated_at) \
         SELECT $1, $2, id, 'inspector', 'reported', 'C01', '', 'medium', 0, 0, 1, $3, $3, $3, \
         1, '[]', $3, $3 FROM users WHERE username = 'supervisor1'",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(app.zone("Z05").to_string())
    .bind(now)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let (_, kept) = app.get(&path, Some(&sup)).await;
    assert_eq!(kept, before, "nothing was written through the server");

    media_entry(&app, &sup, app.zone("Z05")).await;
    let (_, after) = app.get(&path, Some(&sup)).await;
    assert_eq!(z05(&after)["indicators"]["cases_found"], 1, "{after}");
    assert_eq!(z05(&after)["entries"], 1, "{after}");
}

/// The ranking sums the period's entries in SQL (`store::ledger::scored_groups`); it must rank
/// exactly as the reference, `scoring::compute` over every entry, on a ledger with reversals,
/// several zones, sources and rules, unclassified entries and another period's entries.
async fn the_ranking_query_ranks_as_the_reference_scoring(app: TestApp) {
    use gridline_testkit::gridline_server::ledger::chain::{self, Entry};
    use gridline_testkit::gridline_server::ledger::rankings::compute_ranking;
    use gridline_testkit::gridline_server::ledger::scoring;
    use gridline_testkit::gridline_server::store::{ledger as store, reference};
    let sup = app.login("supervisor1").await;
    let pool = &app.state.db.pool;
    let pid: Uuid = current_period(&app, &sup).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let other = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO periods (id, code, starts_at, ends_at, status, created_at) \
         VALUES ($1, 'OTHER', 4000000000000, 4100000000000, 'open', 0)",
    )
    .bind(other.to_string())
    .execute(pool)
    .await
    .unwrap();

    let zones = ["Z01", "Z02", "Z03", "Z05", "Z08"];
    let rules = ["INSP-GARBAGE", "MEDIA-REPORT", "INSP-ROAD"];
    let categories = [Some("greening"), None, Some("unclassified"), Some("roads")];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let mut posted: Vec<Entry> = Vec::new();
    let mut tx = app.state.db.begin_write().await.unwrap();
    for i in 0..300u64 {
        let reversible: Vec<&Entry> = posted
            .iter()
            .filter(|e| {
                e.kind == "deduction" && !posted.iter().any(|r| r.reverses_id == Some(e.id.clone()))
            })
            .collect();
        let e = if i % 7 == 6 && !reversible.is_empty() {
            let original = reversible[next(reversible.len() as u64) as usize];
            gridline_testkit::kit::reversal_of(original, "correction")
        } else {
            let raw = 500 * (1 + next(6) as i64);
            let coefficient = 700 + 50 * next(8) as i64;
            Entry {
                seq: 0,
                id: Uuid::now_v7().to_string(),
                kind: "deduction".into(),
                zone_id: app.zone(zones[next(5) as usize]).to_string(),
                period_id: if next(10) == 0 { other } else { pid }.to_string(),
                rulebook_version: 1,
                rule_code: rules[next(3) as usize].into(),
                source: if next(2) == 0 { "inspection" } else { "media" }.into(),
                category_code: None,
                work_category: categories[next(4) as usize].map(str::to_owned),
                raw_points_milli: raw,
                coefficient_milli: coefficient,
                weighted_points_milli: chain::weighted_milli(raw, coefficient),
                roster: "[]".into(),
                approved_by: "test".into(),
                approved_at: i as i64,
                found_at: i as i64,
                case_id: None,
                case_version: None,
                evidence: "[]".into(),
                proposal_id: None,
                reverses_id: None,
                reason: None,
                prev_hash: String::new(),
                hash: String::new(),
                proposed_by: None,
            }
        };
        posted.push(store::append(tx.conn(), e).await.unwrap());
    }
    tx.commit().await.unwrap();
    let in_period: Vec<&Entry> = posted
        .iter()
        .filter(|e| e.period_id == pid.to_string())
        .collect();
    assert!(in_period.iter().filter(|e| e.kind == "reversal").count() > 10);
    assert!(in_period.iter().any(|e| e.work_category.is_none()));
    assert!(in_period.len() < posted.len(), "some in the other period");

    let period = reference::period(pool, pid).await.unwrap().unwrap();
    let route = compute_ranking(&app.state.db, &period).await.unwrap();
    let zone_refs = store::zone_refs(pool).await.unwrap();
    let entries = store::scored_entries(pool, pid).await.unwrap();
    assert_eq!(entries.len(), in_period.len());
    let indicators = route
        .zones
        .iter()
        .map(|z| (z.zone_id.clone(), z.indicators))
        .collect();
    let reference = scoring::compute(
        &pid.to_string(),
        &period.code,
        &zone_refs,
        &entries,
        &indicators,
    );
    assert_eq!(
        serde_json::to_string_pretty(&route).unwrap(),
        serde_json::to_string_pretty(&reference).unwrap()
    );
    let counted: i64 = route.zones.iter().map(|z| z.entries).sum();
    assert_eq!(counted, in_period.len() as i64);
    assert!(route.zones.iter().any(|z| z.reversals > 0 && z.entries > 0));
    assert!(
        route.zones.iter().any(|z| z.entries == 0),
        "a zone with none"
    );
    let (checked, first_bad) = store::verify_chain(pool).await.unwrap();
    assert_eq!((checked, first_bad), (posted.len() as i64, None));
}

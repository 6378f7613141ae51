//! The ledger as a transparency log: signed checkpoints catch what the hash chain cannot (an
//! entry rewritten with every later hash recomputed, the newest entry removed), a checkpoint is
//! issued with every append and period close, proofs verify outside the server with the
//! documented script, and no entry can be replaced in place.

use std::path::{Path, PathBuf};

use gridline_testkit::gridline_server::ledger::chain;
use gridline_testkit::gridline_server::store::ledger::{entries, verify_chain};
use gridline_testkit::{on_both_backends, Db, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

on_both_backends!(
    a_rewritten_and_rehashed_entry_is_caught_by_a_saved_checkpoint,
    a_removed_newest_entry_is_caught_by_a_saved_checkpoint,
    checkpoints_are_issued_with_every_append_and_period_close,
    proofs_verify_outside_the_server_with_the_documented_script,
    posted_entries_cannot_be_replaced,
);

/// The published checkpoint, fetched without a token as anyone would, saved to a file.
async fn save_checkpoint(app: &TestApp, name: &str) -> (Value, PathBuf) {
    let (status, cp) = app.get("/v1/ledger/checkpoint", None).await;
    assert_eq!(status, StatusCode::OK, "{cp}");
    let path = app.state.config.data_dir.join(name);
    std::fs::write(&path, cp.to_string()).unwrap();
    (cp, path)
}

async fn verify_with(app: &TestApp, checkpoint: &Path) -> (bool, String) {
    let file = checkpoint.to_str().unwrap();
    gridline_cli(app, &["ledger", "verify", "--checkpoint", file]).await
}

/// Drops the triggers that keep `table` append-only, as someone with database access can.
async fn drop_guards(app: &TestApp, table: &str) {
    let statements = match app.db {
        Db::Sqlite => vec![
            format!("DROP TRIGGER {table}_no_update"),
            format!("DROP TRIGGER {table}_no_delete"),
        ],
        // One trigger refuses UPDATE and DELETE.
        Db::Postgres => vec![format!("DROP TRIGGER {table}_no_update ON {table}")],
    };
    for sql in statements {
        sqlx::query(&sql).execute(&app.state.db.pool).await.unwrap();
    }
}

/// Changes the entry at `seq` with `change` and recomputes its hash and every later link and
/// hash, so that the chain verifies again.
async fn rewrite_and_rehash(app: &TestApp, seq: i64, change: impl FnOnce(&mut chain::Entry)) {
    let pool = &app.state.db.pool;
    let mut all = entries(pool, None, None, 0, 1000).await.unwrap();
    let mut change = Some(change);
    let mut prev = chain::GENESIS.to_owned();
    for e in &mut all {
        if e.seq == seq {
            (change.take().unwrap())(e);
        }
        if e.seq >= seq {
            e.prev_hash = prev.clone();
            e.hash = chain::entry_hash(e);
            sqlx::query(
                "UPDATE ledger_entries SET weighted_points_milli = $1, prev_hash = $2, hash = $3 \
                 WHERE seq = $4",
            )
            .bind(e.weighted_points_milli)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .bind(e.seq)
            .execute(pool)
            .await
            .unwrap();
        }
        prev = e.hash.clone();
    }
}

/// After tampering: `gridline ledger verify` reports it through the checkpoints stored in the
/// database (saying all of `stored`); once the attacker deletes those with `delete`, it sees
/// nothing, and only `--checkpoint file`, saved outside before, still reports it (saying all
/// of `saved`).
async fn only_a_saved_checkpoint_tells(
    app: &TestApp,
    file: &Path,
    delete: &str,
    stored: &[&str],
    saved: &[&str],
) {
    let (ok, out) = gridline_cli(app, &["ledger", "verify"]).await;
    assert!(!ok && stored.iter().all(|s| out.contains(s)), "{out}");
    drop_guards(app, "ledger_checkpoints").await;
    sqlx::query(delete)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (ok, out) = gridline_cli(app, &["ledger", "verify"]).await;
    assert!(ok, "the ledger looks intact from the inside: {out}");
    let (ok, out) = verify_with(app, file).await;
    assert!(!ok && saved.iter().all(|s| out.contains(s)), "{out}");
}

async fn a_rewritten_and_rehashed_entry_is_caught_by_a_saved_checkpoint(app: TestApp) {
    let sup = app.login("supervisor1").await;
    for zone in ["Z01", "Z02", "Z03", "Z04"] {
        media_entry(&app, &sup, app.zone(zone)).await;
    }
    let (cp, file) = save_checkpoint(&app, "checkpoint.json").await;
    assert_eq!(cp["tree_size"], 4, "{cp}");
    let (ok, out) = verify_with(&app, &file).await;
    assert!(ok, "a clean ledger holds against its checkpoint: {out}");
    assert!(out.contains("(tree size 4) holds"), "{out}");

    // Someone with database access lowers the second deduction and recomputes every later
    // hash: the chain alone verifies.
    drop_guards(&app, "ledger_entries").await;
    rewrite_and_rehash(&app, 2, |e| e.weighted_points_milli = 1).await;
    let pool = &app.state.db.pool;
    assert_eq!(verify_chain(pool).await.unwrap(), (4, None));

    only_a_saved_checkpoint_tells(
        &app,
        &file,
        "DELETE FROM ledger_checkpoints",
        &["stored checkpoint of tree size 2", "was changed"],
        &["tree size 4", "root hash", "was changed"],
    )
    .await;
}

async fn a_removed_newest_entry_is_caught_by_a_saved_checkpoint(app: TestApp) {
    let sup = app.login("supervisor1").await;
    for zone in ["Z01", "Z02", "Z03"] {
        media_entry(&app, &sup, app.zone(zone)).await;
    }
    let (_, file) = save_checkpoint(&app, "checkpoint.json").await;
    let (ok, out) = verify_with(&app, &file).await;
    assert!(ok, "{out}");

    // The newest entry is deleted: what is left is a perfect chain.
    drop_guards(&app, "ledger_entries").await;
    let pool = &app.state.db.pool;
    sqlx::query("DELETE FROM ledger_entries WHERE seq = 3")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(verify_chain(pool).await.unwrap(), (2, None));
    // The stored checkpoint of the third approval tells, until it is removed too.
    only_a_saved_checkpoint_tells(
        &app,
        &file,
        "DELETE FROM ledger_checkpoints WHERE tree_size = 3",
        &["stored checkpoint of tree size 3", "entries were removed"],
        &[
            "tree size 3, 2 entries in the ledger",
            "entries were removed",
        ],
    )
    .await;
}

async fn checkpoint_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM ledger_checkpoints")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

async fn checkpoints_are_issued_with_every_append_and_period_close(app: TestApp) {
    let (status, body) = app.get("/v1/ledger/checkpoint", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "none before the first entry: {body}"
    );
    assert_eq!(body["code"], "not_found");

    let sup = app.login("supervisor1").await;
    let entry = media_entry(&app, &sup, app.zone("Z01")).await;
    let (_, cp) = app.get("/v1/ledger/checkpoint", None).await;
    assert_eq!(cp["tree_size"], 1, "{cp}");
    assert_eq!(cp["key_id"], app.state.keys.current.kid);
    assert_eq!(cp["public_key"], app.state.keys.current_public_b64());
    assert_eq!(checkpoint_count(&app).await, 1);

    let (status, reversal) = reverse(
        &app,
        &sup,
        entry["id"].as_str().unwrap(),
        "correction",
        "wrong zone",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    let (_, cp) = app.get("/v1/ledger/checkpoint", None).await;
    assert_eq!(cp["tree_size"], 2, "{cp}");
    assert_eq!(checkpoint_count(&app).await, 2);

    // A refused approval issues nothing.
    let (status, _) = app
        .post(
            &format!(
                "/v1/deductions/{}/approve",
                entry["proposal_id"].as_str().unwrap()
            ),
            Some(&sup),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(checkpoint_count(&app).await, 2);

    // A checkpoint's frontier (what the next one extends) damaged in the database: the next
    // checkpoint hashes the whole ledger instead, and is right.
    drop_guards(&app, "ledger_checkpoints").await;
    sqlx::query("UPDATE ledger_checkpoints SET frontier = $1")
        .bind("00".repeat(32))
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    // The current period has not ended: an admin closes it early.
    let period = current_period(&app, &sup).await;
    let admin = app.login("admin").await;
    let (status, closed) = app
        .post(
            &format!("/v1/periods/{}/close", period["id"].as_str().unwrap()),
            Some(&admin),
            &json!({"early": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let (_, at_close) = app.get("/v1/ledger/checkpoint", None).await;
    assert_eq!(at_close["tree_size"], 2, "{at_close}");
    assert_eq!(checkpoint_count(&app).await, 3);
    let (ok, out) = gridline_cli(&app, &["ledger", "verify"]).await;
    assert!(ok && out.contains("3 stored checkpoints hold"), "{out}");

    // Proofs are for supervisors and admins.
    let inclusion = format!(
        "/v1/ledger/proof/inclusion?entry_id={}",
        entry["id"].as_str().unwrap()
    );
    for (token, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(app.login("inspector1").await), StatusCode::FORBIDDEN),
        (Some(app.login("admin").await), StatusCode::OK),
        (Some(sup.clone()), StatusCode::OK),
    ] {
        for path in [inclusion.as_str(), "/v1/ledger/proof/consistency?first=1"] {
            let (status, body) = app.get(path, token.as_deref()).await;
            assert_eq!(status, expected, "{path}: {body}");
        }
    }
    // Sizes the ledger does not have are refused with the parameter named.
    for (path, field) in [
        (format!("{inclusion}&tree_size=3"), "tree_size"),
        (format!("{inclusion}&tree_size=0"), "tree_size"),
        ("/v1/ledger/proof/consistency?first=0".to_owned(), "first"),
        (
            "/v1/ledger/proof/consistency?first=2&second=1".to_owned(),
            "first",
        ),
        (
            "/v1/ledger/proof/consistency?first=1&second=3".to_owned(),
            "second",
        ),
    ] {
        let (status, body) = app.get(&path, Some(&sup)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["details"]["path"], field, "{path}: {body}");
    }
}

/// Runs `docs/verify_ledger_proof.py` on the files; whether it succeeded and what it printed.
fn script(args: &[&str]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_ledger_proof.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn proofs_verify_outside_the_server_with_the_documented_script(app: TestApp) {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        gridline_testkit::skip_or_fail("python3 is not installed");
        return;
    }
    let sup = app.login("supervisor1").await;
    let mut ids = Vec::new();
    for zone in ["Z01", "Z02", "Z03"] {
        ids.push(media_entry(&app, &sup, app.zone(zone)).await["id"].clone());
    }
    let (_, first) = save_checkpoint(&app, "first.json").await;
    for zone in ["Z04", "Z05"] {
        media_entry(&app, &sup, app.zone(zone)).await;
    }
    let (status, _) = reverse(&app, &sup, ids[0].as_str().unwrap(), "correction", "typo").await;
    assert_eq!(status, StatusCode::CREATED);
    let (second_cp, second) = save_checkpoint(&app, "second.json").await;
    assert_eq!(second_cp["tree_size"], 6);

    let dir = &app.state.config.data_dir;
    let save = |name: &str, v: &Value| {
        let path = dir.join(name);
        std::fs::write(&path, v.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let get = |path: String| {
        let (app, sup) = (&app, &sup);
        async move {
            let (status, body) = app.get(&path, Some(sup)).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let id = ids[1].as_str().unwrap();
    let latest = get(format!("/v1/ledger/proof/inclusion?entry_id={id}")).await;
    assert_eq!(
        (latest["seq"].clone(), latest["tree_size"].clone()),
        (json!(2), json!(6))
    );
    let at_first = get(format!(
        "/v1/ledger/proof/inclusion?entry_id={id}&tree_size=3"
    ))
    .await;
    let consistency = get("/v1/ledger/proof/consistency?first=3&second=6".to_owned()).await;
    let (latest, at_first, consistency) = (
        save("inclusion6.json", &latest),
        save("inclusion3.json", &at_first),
        save("consistency.json", &consistency),
    );
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
    // The key an auditor got from the operator, not from the checkpoint.
    let key = app.state.keys.current_public_b64();
    for via in [None, Some("--openssl")] {
        let run = |args: &[&str]| {
            let mut args = args.to_vec();
            args.extend(["--public-key", &key]);
            args.extend(via);
            script(&args)
        };
        for args in [
            vec!["checkpoint", first],
            vec!["inclusion", second, &latest],
            vec!["inclusion", first, &at_first],
            vec!["consistency", first, second, &consistency],
        ] {
            let (ok, out) = run(&args);
            assert!(ok && out.starts_with("ok:"), "{args:?} {via:?}: {out}");
        }
        // A proof against the wrong checkpoint, or from another key, does not verify.
        let (ok, out) = run(&["inclusion", first, &latest]);
        assert!(!ok && out.contains("FAILED"), "{out}");
        let (ok, out) = run(&["consistency", second, first, &consistency]);
        assert!(!ok && out.contains("FAILED"), "{out}");
    }
    let other = gridline_testkit::gridline_server::auth::keys::Keyring::ephemeral()
        .unwrap()
        .current_public_b64();
    let (ok, out) = script(&["checkpoint", first, "--public-key", &other]);
    assert!(!ok && out.contains("FAILED"), "{out}");

    // Any changed hash of a proof, or of the checkpoint, is caught.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(&latest).unwrap()).unwrap();
    forged["audit_path"][1] = json!("00".repeat(32));
    let forged = save("forged.json", &forged);
    let (ok, out) = script(&["inclusion", second, &forged, "--public-key", &key]);
    assert!(
        !ok && out.contains("does not lead to the checkpoint's root"),
        "{out}"
    );
    let mut shifted = second_cp.clone();
    shifted["tree_size"] = json!(5);
    let shifted = save("shifted.json", &shifted);
    let (ok, out) = script(&["checkpoint", &shifted, "--public-key", &key]);
    assert!(!ok && out.contains("signature"), "{out}");
}

async fn posted_entries_cannot_be_replaced(app: TestApp) {
    let sup = app.login("supervisor1").await;
    let entry = media_entry(&app, &sup, app.zone("Z02")).await;
    let pool = &app.state.db.pool;
    let read = || {
        sqlx::query_as::<_, (i64, String, i64)>(
            "SELECT seq, id, weighted_points_milli FROM ledger_entries",
        )
        .fetch_all(pool)
    };
    let before = read().await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, entry["id"].as_str().unwrap());
    assert_ne!(before[0].2, 0);
    let columns = "seq, id, kind, zone_id, period_id, rulebook_version, rule_code, source, \
        category_code, work_category, raw_points_milli, coefficient_milli, weighted_points_milli, \
        roster, approved_by, approved_at, found_at, case_id, case_version, evidence, proposal_id, \
        reverses_id, reason, prev_hash, hash";
    let zeroed = columns.replace(" weighted_points_milli,", " 0,");
    // The same row with its points zeroed, written over the original: SQLite's REPLACE deletes
    // the row in the way (firing no DELETE trigger), PostgreSQL's upsert updates it.
    let attempts = match app.db {
        Db::Sqlite => vec![
            format!("INSERT OR REPLACE INTO ledger_entries ({columns}) SELECT {zeroed} FROM ledger_entries"),
            format!("REPLACE INTO ledger_entries ({columns}) SELECT {zeroed} FROM ledger_entries"),
            // Under another seq: the id collides.
            format!(
                "INSERT OR REPLACE INTO ledger_entries ({columns}) SELECT {} FROM ledger_entries",
                zeroed.replacen("seq,", "seq + 1,", 1)
            ),
        ],
        Db::Postgres => vec![format!(
            "INSERT INTO ledger_entries ({columns}) SELECT {zeroed} FROM ledger_entries \
             ON CONFLICT (seq) DO UPDATE SET weighted_points_milli = 0"
        )],
    };
    for sql in attempts {
        let err = sqlx::query(&sql)
            .execute(pool)
            .await
            .expect_err("replacing a posted entry must fail")
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(read().await.unwrap(), before);

    let checkpoint_replace = match app.db {
        Db::Sqlite => {
            "INSERT OR REPLACE INTO ledger_checkpoints \
            SELECT seq, tree_size, root_hash, issued_at + 1, key_id, public_key, signature, \
            frontier FROM ledger_checkpoints"
        }
        Db::Postgres => {
            "INSERT INTO ledger_checkpoints \
            SELECT seq, tree_size, root_hash, issued_at + 1, key_id, public_key, signature, \
            frontier FROM ledger_checkpoints ON CONFLICT (seq) DO UPDATE SET issued_at = 0"
        }
    };
    let err = sqlx::query(checkpoint_replace)
        .execute(pool)
        .await
        .expect_err("replacing a checkpoint must fail")
        .to_string();
    assert!(err.contains("append-only"), "{err}");
}

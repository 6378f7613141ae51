//! Who may see a photo: streamed links scoped, logged and expiring, and a hash declared in
//! another case opening nothing.

use std::time::Duration;

use base64::Engine;
use gridline_server::store::photos as photo_store;
use gridline_testkit::{new_case, noisy_jpeg as jpeg, Db, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::fixtures::{case_declaring, link, now_ms, photo_app, put_photo, sha_hex, user_id};

on_both_databases!(
    streamed_links_are_scoped_logged_unwidenable_and_expire,
    a_photo_cannot_be_borrowed_by_declaring_its_hash_in_another_case,
);

async fn streamed_links_are_scoped_logged_unwidenable_and_expire(db: Db) {
    let Some(app) = photo_app(db)
        .config(|c| c.photos.link_ttl_secs = 1)
        .spawn()
        .await
    else {
        return;
    };
    let photo = jpeg(300, 200, 8);
    let sha = sha_hex(&photo);
    case_declaring(&app, "Z01", &[&photo], now_ms()).await;
    let inspector = app.login("inspector1").await;
    put_photo(&app, &inspector, &photo, &sha).await;
    let supervisor = app.login("supervisor1").await;

    let (status, given) = link(&app, &supervisor, &sha, "original").await;
    assert_eq!(status, StatusCode::OK, "{given}");
    let url = given["url"].as_str().unwrap().to_owned();
    let resp = app.http.get(app.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(sha_hex(&resp.bytes().await.unwrap()), sha);

    // Outside the scope: as if the photo did not exist.
    let outsider = app.login("inspector3").await; // Z02
    let (status, _) = app
        .get(&format!("/v1/photos/{sha}/link"), Some(&outsider))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/v1/photos/{sha}"), Some(&outsider))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A token cannot be stretched to another variant.
    let (payload, mac) = url
        .trim_start_matches("/v1/photo-content/")
        .split_once('.')
        .unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["v"] = "preview".into();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let (status, body) = app
        .get(&format!("/v1/photo-content/{forged}.{mac}"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("link_expired"))
    );

    // Every link handed out is a logged view.
    let views = photo_store::views(&app.state.db.pool, &sha).await.unwrap();
    let supervisor_id = user_id(&app, "supervisor1").await;
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].0.to_string(), supervisor_id);
    assert_eq!(views[0].1, "original");

    // The link dies with its time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = app.get(&url, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("link_expired"))
    );
}

/// A case of `phone`'s in zone `zone` (index `index` of the demo zones) declaring `photo` with
/// `size`; the push's result for it.
async fn push_case_declaring(
    app: &TestApp,
    phone: &mut Phone,
    zone: &str,
    index: usize,
    photo: &[u8],
    size: usize,
) -> (Uuid, Value) {
    let (case_id, mut payload) = new_case(app.zone(zone), index, "event:0102");
    payload["photos"][0]["sha256"] = serde_json::json!(sha_hex(photo));
    payload["photos"][0]["size"] = serde_json::json!(size);
    let op = phone.op("case.create@1", payload);
    let (status, body) = phone.push(app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (case_id, body["results"][0].clone())
}

/// Hashes are not secret (case views and the ledger export show them): declaring another
/// zone's photo in one's own case opens neither its bytes nor its metadata, a declaration
/// with another size than the stored photo's is refused, and the supervisor deciding on the
/// borrowing case sees the reuse.
async fn a_photo_cannot_be_borrowed_by_declaring_its_hash_in_another_case(db: Db) {
    let Some(app) = photo_app(db).spawn().await else {
        return;
    };
    let photo = jpeg(80, 60, 21);
    let sha = sha_hex(&photo);
    let mut owner = Phone::enrol(&app, "inspector1").await;
    let (owned, result) =
        push_case_declaring(&app, &mut owner, "Z01", 0, &photo, photo.len()).await;
    assert_eq!(result["status"], "applied", "{result}");
    assert_eq!(
        put_photo(&app, &owner.token, &photo, &sha).await.0,
        StatusCode::CREATED
    );

    let mut borrower = Phone::enrol(&app, "inspector3").await;
    let (refused, result) =
        push_case_declaring(&app, &mut borrower, "Z02", 1, &photo, 123_456).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["code"], "invalid_request", "{result}");
    let sup = app.login("supervisor1").await;
    assert_eq!(
        app.get(&format!("/v1/cases/{refused}"), Some(&sup)).await.0,
        StatusCode::NOT_FOUND
    );
    let (borrowing, result) =
        push_case_declaring(&app, &mut borrower, "Z02", 1, &photo, photo.len()).await;
    assert_eq!(result["status"], "applied", "{result}");

    for variant in ["original", "thumb"] {
        assert_eq!(
            link(&app, &borrower.token, &sha, variant).await.0,
            StatusCode::NOT_FOUND,
            "{variant}"
        );
    }
    let (status, _) = app
        .get(&format!("/v1/photos/{sha}"), Some(&borrower.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = put_photo(&app, &borrower.token, &photo, &sha).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "photo_not_declared");
    // The owner's access is unchanged.
    assert_eq!(
        link(&app, &owner.token, &sha, "original").await.0,
        StatusCode::OK
    );

    // Where the supervisor decides: the queue and the case view flag both cases.
    let (status, queue) = app.get("/v1/review/queue?limit=100", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    for case in [owned, borrowing] {
        let item = queue["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["case"]["id"] == serde_json::json!(case))
            .unwrap_or_else(|| panic!("{case} in the queue: {queue}"));
        assert!(
            item["evidence"]["flags"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("photo_reused")),
            "{item}"
        );
        let (_, view) = app.get(&format!("/v1/cases/{case}"), Some(&sup)).await;
        assert!(
            view["evidence"]["flags"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("photo_reused")),
            "{view}"
        );
    }
}

//! Authentication: tokens, refresh-token families, devices, throttling.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::SigningKey;
use gridline_testkit::{on_both_backends, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

on_both_backends!(
    reused_refresh_token_revokes_its_family,
    logged_out_refresh_token_is_refused,
    revoked_device_is_cut_off_at_its_next_request,
    forged_and_expired_tokens_are_refused,
    failed_logins_are_throttled,
    one_address_cannot_spray_a_password_over_every_account,
    a_lock_caused_from_one_address_does_not_keep_the_user_out_elsewhere,
    an_instance_with_another_key_file_refuses_to_start,
    a_change_of_roles_sends_the_user_to_sign_in_again,
);

async fn a_change_of_roles_sends_the_user_to_sign_in_again(app: TestApp) {
    let admin = app.login("admin").await;
    let (_, users) = app.get("/v1/users", Some(&admin)).await;
    let id_of = |name: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (chief, me) = (id_of("roadchief1"), id_of("admin"));
    let tokens = app.login_full("roadchief1").await;
    let patch = |id: String, body: serde_json::Value| {
        let admin = admin.clone();
        let app = &app;
        async move {
            app.send(
                reqwest::Method::PATCH,
                &format!("/v1/users/{id}"),
                Some(&admin),
                &body,
            )
            .await
        }
    };
    let (status, user) = patch(
        chief.clone(),
        json!({"roles": ["road_chief", "section_chief"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["roles"], json!(["road_chief", "section_chief"]));
    // The phone's refresh token no longer works: it signs in again and gets the new roles.
    let (status, _) = refresh(&app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = app.login_full("roadchief1").await;
    assert!(again["access_token"].is_string());

    // Nothing unknown, nothing empty, and an admin keeps their own admin role and account.
    for (id, body, field) in [
        (chief.clone(), json!({"roles": []}), "roles"),
        (chief.clone(), json!({"nickname": "x"}), "nickname"),
        (me.clone(), json!({"roles": ["supervisor"]}), "roles"),
        (me.clone(), json!({"disabled": true}), "disabled"),
        (chief.clone(), json!({"display_name": " "}), "display_name"),
    ] {
        let (status, body) = patch(id, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    let (status, _) = patch(Uuid::now_v7().to_string(), json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Disabled, the account cannot sign in; enabled again, it can.
    let (status, _) = patch(chief.clone(), json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"username": "roadchief1", "password": gridline_testkit::gridline_server::demo::DEMO_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = patch(chief, json!({"disabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(app.login_full("roadchief1").await["access_token"].is_string());
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, serde_json::Value) {
    app.post("/v1/auth/refresh", None, &json!({ "refresh_token": token }))
        .await
}

async fn reused_refresh_token_revokes_its_family(app: TestApp) {
    let first = app.login_full("inspector1").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = refresh(&app, &r1).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "refresh tokens rotate");

    // r1 is spent: presenting it again is theft or a bug; the whole family goes.
    let (status, body) = refresh(&app, &r1).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_refresh_token");
    let (status, _) = refresh(&app, &r2).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the descendant r2 is revoked too"
    );

    // Another login (another family) is unaffected.
    let other = app.login_full("inspector1").await;
    let (status, _) = refresh(&app, other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

async fn logged_out_refresh_token_is_refused(app: TestApp) {
    let tokens = app.login_full("supervisor1").await;
    let r = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = app
        .post("/v1/auth/logout", None, &json!({ "refresh_token": r }))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = refresh(&app, r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_refresh_token");
}

pub async fn enrol(app: &TestApp, username: &str) -> (Uuid, SigningKey, serde_json::Value) {
    let token = app.login(username).await;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let device_id = Uuid::now_v7();
    let (status, body) = app
        .post(
            "/v1/devices",
            Some(&token),
            &json!({
                "device_id": device_id,
                "public_key": STANDARD.encode(key.verifying_key().as_bytes()),
                "name": format!("{username}'s phone"),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (device_id, key, body)
}

async fn revoked_device_is_cut_off_at_its_next_request(app: TestApp) {
    let (device_id, key, enrolled) = enrol(&app, "inspector1").await;
    let access = enrolled["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh_token = enrolled["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app.get("/v1/me", Some(&access)).await;
    assert_eq!(status, StatusCode::OK);

    // Enrolment is idempotent for the same key.
    let token = app.login("inspector1").await;
    let body = json!({"device_id": device_id, "public_key": STANDARD.encode(key.verifying_key().as_bytes()), "name": "again"});
    let (status, _) = app.post("/v1/devices", Some(&token), &body).await;
    assert_eq!(status, StatusCode::OK);

    let admin = app.login("admin").await;
    let (status, body) = app
        .post(
            &format!("/v1/devices/{device_id}/revoke"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["revoked_at"].is_string());

    let (status, body) = app.get("/v1/me", Some(&access)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "device_revoked");
    let (status, _) = refresh(&app, &refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .post("/v1/auth/login", None, &json!({"username": "inspector1", "password": gridline_testkit::gridline_server::demo::DEMO_PASSWORD, "device_id": device_id}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "device_revoked");

    // Someone else's device cannot be revoked by a non-admin (and its existence does not leak).
    let (other, _, _) = enrol(&app, "inspector2").await;
    let (status, _) = app
        .post(
            &format!("/v1/devices/{other}/revoke"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn forged_and_expired_tokens_are_refused(app: TestApp) {
    let good = app.login("admin").await;
    let (status, _) = app.get("/v1/users", Some(&good)).await;
    assert_eq!(status, StatusCode::OK);
    let user = app.get("/v1/me", Some(&good)).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |iat: i64, exp: i64, aud: &str| {
        json!({"sub": user, "iss": "gridline", "aud": aud, "iat": iat, "nbf": iat, "exp": exp,
               "jti": Uuid::new_v4(), "typ": "access", "roles": ["admin"]})
    };
    let kid = app.state.keys.current.kid.clone();
    let sign = |key: &jsonwebtoken::EncodingKey, claims: &serde_json::Value, kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    let server_key = &app.state.keys.current.encoding;

    // Control: a token we mint with the server key and valid claims works, so the refusals
    // below are about the one thing each changes.
    let control = sign(server_key, &claims(now, now + 300, "gridline-api"), &kid);
    assert_eq!(app.get("/v1/users", Some(&control)).await.0, StatusCode::OK);

    let expired = sign(
        server_key,
        &claims(now - 7200, now - 3600, "gridline-api"),
        &kid,
    );
    let not_yet = sign(
        server_key,
        &claims(now + 3600, now + 7200, "gridline-api"),
        &kid,
    );
    let wrong_aud = sign(server_key, &claims(now, now + 300, "someone-else"), &kid);
    let other = SigningKey::generate(&mut rand::rngs::OsRng);
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let other_key =
        jsonwebtoken::EncodingKey::from_ed_der(other.to_pkcs8_der().unwrap().as_bytes());
    let wrong_key = sign(&other_key, &claims(now, now + 300, "gridline-api"), &kid);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&claims(now, now + 300, "gridline-api"))
    );
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.clone());
        let secret = app.state.keys.current_public_b64();
        jsonwebtoken::encode(
            &header,
            &claims(now, now + 300, "gridline-api"),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let refresh_as_access = app.login_full("admin").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let mut c: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        c["roles"] = json!(["admin", "supervisor"]);
        format!("{}.{}.{}", parts[0], b64(&c), parts[2])
    };
    for (name, token) in [
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong audience", wrong_aud),
        ("wrong key", wrong_key),
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("refresh token as access token", refresh_as_access),
        ("tampered claims", tampered),
        ("garbage", "not-a-token".to_owned()),
    ] {
        let (status, body) = app.get("/v1/users", Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{name}");
    }
    let (status, _) = app.get("/v1/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn failed_logins_are_throttled(app: TestApp) {
    for _ in 0..5 {
        let (status, body) = app
            .post(
                "/v1/auth/login",
                None,
                &json!({"username": "inspector3", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "invalid_credentials");
    }
    // Locked now, even with the right password.
    let resp = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": "inspector3", "password": gridline_testkit::gridline_server::demo::DEMO_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 300);
    // Other users are unaffected.
    app.login("inspector4").await;
    // Unknown users answer like wrong passwords.
    let (status, body) = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"username": "nobody", "password": "whatever1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_credentials");
}

/// An HTTP client whose requests come from `ip` (any 127.0.0.0/8 address is this machine).
fn client_at(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> StatusCode {
    client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

const RIGHT: &str = gridline_testkit::gridline_server::demo::DEMO_PASSWORD;

async fn one_address_cannot_spray_a_password_over_every_account(app: TestApp) {
    let sprayer = client_at("127.0.0.2");
    let per_address = app.state.config.auth.login_max_failures_per_address;
    for i in 0..per_address {
        let status = login_from(&app, &sprayer, &format!("user{i}"), "Summer2026!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The address is locked out, whatever name it tries next.
    assert_eq!(
        login_from(&app, &sprayer, "inspector1", "Summer2026!").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&app, &sprayer, "inspector1", RIGHT).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other addresses are not.
    assert_eq!(
        login_from(&app, &client_at("127.0.0.3"), "inspector1", RIGHT).await,
        StatusCode::OK
    );
}

async fn a_lock_caused_from_one_address_does_not_keep_the_user_out_elsewhere(app: TestApp) {
    let auth = &app.state.config.auth;
    let attacker = client_at("127.0.0.2");
    for _ in 0..auth.login_max_failures {
        let status = login_from(&app, &attacker, "inspector3", "wrong-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&app, &attacker, "inspector3", RIGHT).await,
        StatusCode::TOO_MANY_REQUESTS,
        "locked for the address that guessed"
    );
    // The attacker's further attempts are refused, not counted: the user still gets in from
    // their own address.
    for _ in 0..10 {
        login_from(&app, &attacker, "inspector3", "wrong-password").await;
    }
    let user = client_at("127.0.0.3");
    assert_eq!(
        login_from(&app, &user, "inspector3", RIGHT).await,
        StatusCode::OK
    );

    // Guessing from many addresses meets the ceiling for the user name, everywhere.
    let addresses = auth
        .login_max_failures_per_user
        .div_ceil(auth.login_max_failures);
    for a in 1..addresses {
        let guesser = client_at(&format!("127.0.1.{a}"));
        for _ in 0..auth.login_max_failures {
            login_from(&app, &guesser, "inspector3", "wrong-password").await;
        }
    }
    assert_eq!(
        login_from(&app, &user, "inspector3", RIGHT).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other accounts are unaffected.
    assert_eq!(
        login_from(&app, &user, "inspector4", RIGHT).await,
        StatusCode::OK
    );
}

/// Builds a server's state (as a start does) and gives the reason it refused to start.
async fn start_refusal(
    config: gridline_testkit::gridline_server::config::Config,
) -> Option<String> {
    match gridline_testkit::gridline_server::AppState::build(config).await {
        Ok(state) => {
            state.db.close().await;
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

async fn an_instance_with_another_key_file_refuses_to_start(app: TestApp) {
    use gridline_testkit::gridline_server::auth::keys::Keyring;
    let token = app.login("admin").await;
    let mut other = (*app.state.config).clone();
    other.auth.key_file = Some(app.dir.path().join("other-keys.json"));
    let refusal = start_refusal(other.clone()).await.expect("refused");
    assert!(refusal.contains("setting `auth.key_file`"), "{refusal}");
    assert!(refusal.contains("other-keys.json"), "{refusal}");
    // The same key file starts.
    assert_eq!(start_refusal((*app.state.config).clone()).await, None);

    // A rotated key file (old keys and a new one) starts and signs with the new key; a copy
    // taken before the rotation cannot verify those tokens and is refused from then on.
    let shared = app.state.config.key_file();
    let before_rotation = app.dir.path().join("keys-before-rotation.json");
    std::fs::copy(&shared, &before_rotation).unwrap();
    Keyring::rotate(&shared).unwrap();
    assert_eq!(start_refusal((*app.state.config).clone()).await, None);
    other.auth.key_file = Some(before_rotation);
    let refusal = start_refusal(other).await.expect("refused");
    assert!(refusal.contains("setting `auth.key_file`"), "{refusal}");
    // The running instance was not disturbed.
    assert_eq!(app.get("/v1/me", Some(&token)).await.0, StatusCode::OK);
}

//! Five weeks of Taihe's history, made through the API itself (the router, in process): phones
//! report cases with photos, supervisors file, reject and dispatch them, section chiefs rectify
//! some, deductions are proposed and approved under four eyes, a media report and a leader's
//! criticism are entered, and last month's period is closed with its ranking. The console,
//! the rankings and the exports then have something real to show, and every step went through
//! the same checks as a person's would.

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use ed25519_dalek::SigningKey;
use gridline_sync::{OperationBody, SignedOperation};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;
use uuid::Uuid;

use super::{DemoSite, DEMO_PASSWORD};
use crate::state::AppState;

/// The cases reported over the five weeks.
const CASES: usize = 48;

/// What inspectors find: (taxonomy key, description, severity, the rule it costs).
const FINDINGS: [(&str, &str, &str, &str); 6] = [
    (
        "event:0102",
        "农贸市场门口垃圾桶满溢，垃圾散落地面",
        "medium",
        "INSP-GARBAGE",
    ),
    (
        "event:0501",
        "人行道上有流动摊贩占道经营",
        "low",
        "INSP-VENDING",
    ),
    (
        "component:0101",
        "人行道窨井盖缺失，已临时围挡",
        "high",
        "INSP-COVER",
    ),
    (
        "event:0102",
        "小区围墙外堆放建筑垃圾",
        "medium",
        "INSP-GARBAGE",
    ),
    ("component:0102", "污水井盖破损下陷", "high", "INSP-COVER"),
    (
        "event:0501",
        "早市摊点占用机动车道",
        "medium",
        "INSP-VENDING",
    ),
];

/// The application, called in process.
struct Api {
    app: Router,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::ACCEPT_LANGUAGE, "en");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string()))?,
            None => req.body(Body::empty())?,
        };
        self.send(req, &format!("{method} {path}")).await
    }

    async fn put_photo(&self, token: &str, bytes: &[u8]) -> anyhow::Result<Value> {
        let sha = gridline_sync::signing::sha256_hex(bytes);
        let req = Request::builder()
            .method(Method::PUT)
            .uri(format!("/v1/photos/{sha}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "image/jpeg")
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(Body::from(bytes.to_vec()))?;
        self.send(req, "PUT photo").await
    }

    async fn send(&self, req: Request<Body>, what: &str) -> anyhow::Result<Value> {
        let resp = self.app.clone().oneshot(req).await?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("demo history: {what}: {status} {value}");
        }
        Ok(value)
    }

    async fn login(&self, username: &str) -> anyhow::Result<String> {
        let body = json!({"username": username, "password": DEMO_PASSWORD});
        let v = self
            .call(Method::POST, "/v1/auth/login", None, Some(body))
            .await?;
        token(&v)
    }

    async fn transition(&self, token: &str, case: Uuid, mut body: Value) -> anyhow::Result<Value> {
        let view = self
            .call(Method::GET, &format!("/v1/cases/{case}"), Some(token), None)
            .await?;
        body["base_version"] = view["version"].clone();
        self.call(
            Method::POST,
            &format!("/v1/cases/{case}/transitions"),
            Some(token),
            Some(body),
        )
        .await
    }

    /// Proposes a deduction as supervisor1 and, unless `pending`, approves it as supervisor2,
    /// who first opens every photo of the case (an approver must have seen the evidence).
    async fn deduct(&self, sups: &[String; 2], body: Value, pending: bool) -> anyhow::Result<()> {
        let case = body["case_id"].as_str().map(str::to_owned);
        let p = self
            .call(Method::POST, "/v1/deductions", Some(&sups[0]), Some(body))
            .await?;
        if !pending {
            if let Some(case) = case {
                let view = self
                    .call(
                        Method::GET,
                        &format!("/v1/cases/{case}"),
                        Some(&sups[1]),
                        None,
                    )
                    .await?;
                for photo in view["photos"].as_array().into_iter().flatten() {
                    let sha = photo["sha256"].as_str().unwrap_or_default();
                    self.call(
                        Method::GET,
                        &format!("/v1/photos/{sha}/link?variant=original"),
                        Some(&sups[1]),
                        None,
                    )
                    .await?;
                }
            }
            let id = p["id"].as_str().unwrap_or_default();
            self.call(
                Method::POST,
                &format!("/v1/deductions/{id}/approve"),
                Some(&sups[1]),
                Some(json!({})),
            )
            .await?;
        }
        Ok(())
    }
}

fn token(v: &Value) -> anyhow::Result<String> {
    v["access_token"]
        .as_str()
        .or_else(|| v["tokens"]["access_token"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("demo history: no token in {v}"))
}

/// An inspector's phone: its key, its chain and its device-bound token.
struct Phone {
    device_id: Uuid,
    key: SigningKey,
    token: String,
    seq: u64,
    prev: String,
}

impl Phone {
    async fn enrol(api: &Api, username: &str) -> anyhow::Result<Phone> {
        let login = api.login(username).await?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let device_id = Uuid::now_v7();
        let body = json!({
            "device_id": device_id,
            "public_key": gridline_sync::signing::encode_public_key(&key.verifying_key()),
            "name": format!("{username} 的手机"),
        });
        let v = api
            .call(Method::POST, "/v1/devices", Some(&login), Some(body))
            .await?;
        Ok(Phone {
            device_id,
            key,
            token: token(&v)?,
            seq: 0,
            prev: gridline_sync::signing::GENESIS_HASH.to_owned(),
        })
    }

    async fn push(&mut self, api: &Api, op_type: &str, payload: Value) -> anyhow::Result<()> {
        let body = OperationBody {
            op_id: Uuid::now_v7(),
            device_id: self.device_id,
            seq: self.seq + 1,
            prev: self.prev.clone(),
            op_type: op_type.to_owned(),
            queued_at: OffsetDateTime::now_utc(),
            payload,
        };
        let signed: SignedOperation = gridline_sync::signing::sign_operation(&self.key, &body);
        self.seq += 1;
        self.prev = gridline_sync::signing::op_hash(&signed.op);
        let push = json!({
            "protocol": 1,
            "device_id": self.device_id,
            "device_time": rfc3339(OffsetDateTime::now_utc()),
            "operations": [signed],
        });
        let v = api
            .call(Method::POST, "/v1/sync/push", Some(&self.token), Some(push))
            .await?;
        match v["results"][0]["status"].as_str() {
            Some("applied") => Ok(()),
            _ => anyhow::bail!("demo history: push refused: {v}"),
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A photo of the problem: a small JPEG, different for every `seed` (its colours and
/// stripes come from a SplitMix64 of the seed, so no two seeds give the same bytes).
fn photo(seed: usize) -> anyhow::Result<Vec<u8>> {
    let mut z = (seed as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let b = z.to_le_bytes();
    let (w, h) = (320u32, 240u32);
    let stripe = 8 + u32::from(b[6] % 24);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let band = ((x + y * u32::from(b[7] % 3)) / stripe) % 2 == 0;
        let shade = (y * 96 / h) as u8;
        if band {
            image::Rgb([b[0].wrapping_add(shade), b[1], b[2]])
        } else {
            image::Rgb([b[3], b[4].wrapping_add(shade), b[5]])
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode(
        img.as_raw(),
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// Loads the history (Taihe only: the tests' subdistrict starts empty).
pub async fn load(state: &AppState, site: DemoSite, zone_ids: &[Uuid]) -> anyhow::Result<()> {
    // The history is made in one go by a handful of accounts, far faster than people work:
    // the per-user request limit (0 turns it off) is not for it.
    let mut unlimited = state.clone();
    unlimited.rate_limiter = std::sync::Arc::new(crate::ratelimit::RateLimiter::new(0, 1));
    let api = Api {
        app: crate::app(unlimited),
    };
    let tz = state.config.site.tz();
    let now = OffsetDateTime::now_utc();
    let this_month = crate::localtime::month_of(&tz, now);
    let (month_start, _) = crate::localtime::month_span(&tz, &this_month)
        .ok_or_else(|| anyhow::anyhow!("demo history: no month {this_month}"))?;
    let last_month = crate::localtime::month_of(&tz, month_start - Duration::days(1));
    let (last_start, _) = crate::localtime::month_span(&tz, &last_month)
        .ok_or_else(|| anyhow::anyhow!("demo history: no month {last_month}"))?;

    let admin = api.login("admin").await?;
    let sups = [
        api.login("supervisor1").await?,
        api.login("supervisor2").await?,
    ];
    // Last month, with this month's coefficients.
    let period = api
        .call(
            Method::POST,
            "/v1/periods",
            Some(&admin),
            Some(json!({"code": last_month, "month": last_month})),
        )
        .await?;
    let last_period = period["id"].as_str().unwrap_or_default().to_owned();
    for (i, zone) in zone_ids.iter().enumerate() {
        api.call(
            Method::PUT,
            &format!("/v1/periods/{last_period}/coefficients/{zone}"),
            Some(&admin),
            Some(json!({"coefficient": site.coefficient(i)})),
        )
        .await?;
    }

    let mut phones = Vec::new();
    for z in 0..zone_ids.len() {
        phones.push(Phone::enrol(&api, &format!("inspector{}", z * 2 + 1)).await?);
    }
    let mut chiefs = Vec::new();
    for z in 0..zone_ids.len() {
        chiefs.push(api.login(&format!("sectionchief{}", z + 1)).await?);
    }

    // Up to five weeks back from now (never before last month began), oldest first.
    let span_days = 35.min((now - last_start).whole_days() - 1);
    for k in 0..CASES {
        let z = (k * 5) % zone_ids.len();
        let (category, description, severity, rule) = FINDINGS[k % FINDINGS.len()];
        let days_ago = span_days - (k as i64 * span_days) / CASES as i64;
        let captured = (now - Duration::days(days_ago) - Duration::hours((k % 7) as i64))
            .min(now - Duration::minutes(30));
        let (a, b, c, d) = site.zone_rect(z);
        let fx = ((k * 37) % 89) as f64 / 89.0;
        let fy = ((k * 53) % 83) as f64 / 83.0;
        let (lat, lon) = (
            b + 0.001 + fy * (d - b - 0.002),
            a + 0.001 + fx * (c - a - 0.002),
        );
        let bytes = photo(k)?;
        let case_id = Uuid::now_v7();
        let at = rfc3339(captured);
        phones[z]
            .push(
                &api,
                "case.create@1",
                json!({
                    "case_id": case_id,
                    "zone_id": zone_ids[z],
                    "category_code": category,
                    "location": {"lat": lat, "lon": lon, "accuracy_m": 6.0},
                    "description": description,
                    "severity": severity,
                    "captured_at": at,
                    "photos": [{"sha256": gridline_sync::signing::sha256_hex(&bytes),
                        "size": bytes.len(), "captured_at": at, "role": "before"}],
                }),
            )
            .await?;
        api.put_photo(&phones[z].token, &bytes).await?;

        // Every sixth case of the later half waits in the queue; one in six is not the
        // office's business.
        match k % 6 {
            0 if k >= CASES / 2 => continue,
            1 => {
                api.transition(
                    &sups[0],
                    case_id,
                    json!({"action": "reject", "comment": "经核实为私人院内问题，不属于城市管理范围"}),
                )
                .await?;
                continue;
            }
            _ => {}
        }
        api.transition(&sups[0], case_id, json!({"action": "file"}))
            .await?;
        api.transition(&sups[0], case_id, json!({"action": "dispatch"}))
            .await?;
        if k % 3 != 2 {
            // The section chief rectifies it and the office verifies.
            let after = photo(1000 + k)?;
            api.transition(&chiefs[z], case_id, json!({"action": "start"}))
                .await?;
            api.transition(
                &chiefs[z],
                case_id,
                json!({"action": "report_rectified", "comment": "已整改完毕",
                    "photos": [{"sha256": gridline_sync::signing::sha256_hex(&after),
                        "size": after.len(), "captured_at": rfc3339(now - Duration::minutes(10)),
                        "role": "after"}]}),
            )
            .await?;
            api.put_photo(&chiefs[z], &after).await?;
            api.transition(&sups[0], case_id, json!({"action": "close"}))
                .await?;
        }
        // Deductions: most filed cases of last month, some of this one (one left pending).
        let in_last_month = captured < month_start;
        if k % 2 == 0 || in_last_month {
            let pending = !in_last_month && k % 4 == 0;
            api.deduct(
                &sups,
                json!({"case_id": case_id, "rule_code": rule,
                    "note": format!("巡查发现：{description}")}),
                pending,
            )
            .await?;
        }
    }

    // The other channels the rulebook scores.
    let direct = [
        (
            1,
            "media",
            "MEDIA",
            "《春城晚报》报道东站片区夜市油烟扰民",
            20,
        ),
        (
            4,
            "leader_criticism",
            "LEADER",
            "区领导检查时批评云波社区背街小巷卫生差",
            10,
        ),
        (6, "media", "MEDIA", "市民网络曝光和谐社区绿化带垃圾堆积", 2),
    ];
    for (z, source, rule, note, days_ago) in direct {
        let found = (now - Duration::days(days_ago)).max(last_start + Duration::days(1));
        api.deduct(
            &sups,
            json!({"zone_id": zone_ids[z], "source": source, "rule_code": rule, "note": note,
                "found_at": rfc3339(found)}),
            false,
        )
        .await?;
    }

    // Last month ends with its ranking.
    api.call(
        Method::POST,
        &format!("/v1/periods/{last_period}/close"),
        Some(&admin),
        Some(json!({})),
    )
    .await?;
    if matches!(site, DemoSite::Taihe) {
        plans(&api, &sups[0], &admin, zone_ids, &last_month).await?;
    }
    Ok(())
}

/// Two inspection plans from the start of last month: an announced weekly one of the first
/// community by its two inspectors with a scored checklist, and an unannounced monthly night visit of the third,
/// confidential to its planner and assignee. (The English demo, the tests' data, has none.)
async fn plans(
    api: &Api,
    planner: &str,
    admin: &str,
    zone_ids: &[Uuid],
    last_month: &str,
) -> anyhow::Result<()> {
    let users = api
        .call(Method::GET, "/v1/users", Some(admin), None)
        .await?;
    let id_of = |name: &str| {
        users
            .as_array()
            .and_then(|all| all.iter().find(|u| u["username"] == name))
            .map(|u| u["id"].clone())
            .unwrap_or(Value::Null)
    };
    let weekly = json!({
        "name": "井盖与市容周巡",
        "kind": "periodic",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
        "dtstart": format!("{last_month}-01T09:00"),
        "window_minutes": 240,
        "zones": &zone_ids[..1.min(zone_ids.len())],
        "assignees": [id_of("inspector1"), id_of("inspector2")],
        "checklist": {"items": [
            {"id": "covers", "label": "井盖完好、无缺失破损", "weight": 3, "mandatory": true,
             "category_code": "component:0101"},
            {"id": "litter", "label": "路面无暴露垃圾", "weight": 2, "category_code": "event:0102"},
            {"id": "stalls", "label": "无占道经营", "weight": 1, "category_code": "event:0501"}
        ]}
    });
    let night = json!({
        "name": "夜间市容暗访",
        "kind": "unannounced",
        "rrule": "FREQ=MONTHLY;BYDAY=2FR",
        "dtstart": format!("{last_month}-01T20:00"),
        "window_minutes": 180,
        "zones": &zone_ids[2.min(zone_ids.len())..3.min(zone_ids.len())],
        "assignees": [id_of("inspector5")],
        "checklist": {"items": [
            {"id": "stalls", "label": "无夜市占道经营", "weight": 2, "mandatory": true,
             "category_code": "event:0501"},
            {"id": "lights", "label": "路灯亮灯正常", "weight": 1}
        ]}
    });
    for plan in [weekly, night] {
        api.call(Method::POST, "/v1/plans", Some(planner), Some(plan))
            .await?;
    }
    Ok(())
}

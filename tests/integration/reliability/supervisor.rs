//! A supervisor at a desk while the server is being killed: takes synced cases whose evidence
//! is complete, files each, proposes a deduction on it and approves the proposal (alone: the
//! server runs with four eyes off, as a one-person office does), retrying
//! every step after a failure without duplicating anything:
//!
//! - a transition whose answer was lost is seen on the case (it is `filed`) before it is sent
//!   again;
//! - a proposal is sent with a `proposal_id` the supervisor made for the case, and resent
//!   unchanged after a lost answer: the server answers the resend with the proposal the first
//!   attempt made (`200` instead of `201`), never a second one;
//! - an approval is resent with the same proposal id; a `409` then means an earlier attempt
//!   went through, which a read of the proposal confirms.
//!
//! An approval counts as acknowledged when its `200` arrived, or when that read shows the
//! proposal approved with its entry.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::AckedApproval;

const USERNAME: &str = "supervisor1";
const RULE: &str = "INSP-GARBAGE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    File,
    /// Proposes under this client-made id, as often as it takes.
    Propose(Uuid),
    Approve(Uuid),
    Done,
}

pub struct Supervisor {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    /// Takes at most this many cases, to keep the run bounded.
    max_cases: usize,
    cases: BTreeMap<Uuid, Step>,
    pub approvals: Vec<AckedApproval>,
    /// Requests that got no answer, or 503 + Retry-After.
    pub failed_requests: u64,
    /// Answers that must never come: 5xx but 503 with Retry-After, and refusals the flow
    /// does not explain.
    pub wrong: Vec<String>,
}

impl Supervisor {
    pub fn new(base: &str, max_cases: usize) -> Supervisor {
        Supervisor {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            token: None,
            max_cases,
            cases: BTreeMap::new(),
            approvals: Vec::new(),
            failed_requests: 0,
            wrong: Vec::new(),
        }
    }

    /// Cases taken and not finished yet.
    pub fn unfinished(&self) -> usize {
        self.cases.values().filter(|s| **s != Step::Done).count()
    }

    /// One request; `None` when it got no (whole) answer, was refused for a while (503), or
    /// the session must be renewed. Wrong answers are recorded and also give `None`.
    async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Option<Value> {
        self.call_status(method, path, body)
            .await
            .and_then(|(status, body)| {
                if status.is_success() {
                    Some(body)
                } else {
                    self.wrong.push(format!("{path}: {status} {body}"));
                    None
                }
            })
    }

    /// Like [`Self::call`], but 4xx answers are returned for the caller to judge.
    async fn call_status(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        if self.token.is_none() {
            self.login().await?;
        }
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_deref().unwrap_or_default());
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.answer(path, req).await
    }

    async fn answer(
        &mut self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Option<(StatusCode, Value)> {
        let Ok(resp) = req.send().await else {
            self.failed_requests += 1;
            return None;
        };
        let status = resp.status();
        let retry_after = resp.headers().contains_key("retry-after");
        let Ok(bytes) = resp.bytes().await else {
            // Cut off mid-answer by the kill.
            self.failed_requests += 1;
            return None;
        };
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            StatusCode::UNAUTHORIZED => {
                self.token = None;
                None
            }
            StatusCode::SERVICE_UNAVAILABLE if retry_after => {
                self.failed_requests += 1;
                None
            }
            s if s.is_server_error() => {
                self.wrong.push(format!("{what}: {s} {body}"));
                None
            }
            s => Some((s, body)),
        }
    }

    async fn login(&mut self) -> Option<()> {
        let req = self
            .http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&json!({"username": USERNAME, "password": gridline_server::demo::DEMO_PASSWORD}));
        let (status, body) = self.answer("login", req).await?;
        if status != StatusCode::OK {
            self.wrong.push(format!("login: {status} {body}"));
            return None;
        }
        self.token = Some(body["access_token"].as_str()?.to_owned());
        Some(())
    }

    /// Takes new cases (reported, evidence complete) and moves every unfinished one a step on.
    pub async fn round(&mut self) {
        if self.cases.len() < self.max_cases {
            if let Some(page) = self
                .call(Method::GET, "/v1/cases?state=reported&limit=500", None)
                .await
            {
                for c in page["items"].as_array().into_iter().flatten() {
                    if self.cases.len() >= self.max_cases {
                        break;
                    }
                    if c["evidence"]["complete"] == true {
                        if let Some(id) = c["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                            self.cases.entry(id).or_insert(Step::File);
                        }
                    }
                }
            }
        }
        let open: Vec<Uuid> = self
            .cases
            .iter()
            .filter(|(_, s)| **s != Step::Done)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            let step = self.advance(id, self.cases[&id]).await;
            self.cases.insert(id, step);
        }
    }

    /// Rounds until every case taken is finished, or panics at `deadline`.
    pub async fn drain(&mut self, deadline: tokio::time::Instant) {
        loop {
            self.round().await;
            if self.unfinished() == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "supervisor: {} cases unfinished at the deadline; wrong answers: {:?}",
                self.unfinished(),
                self.wrong
            );
        }
    }

    async fn advance(&mut self, id: Uuid, step: Step) -> Step {
        match step {
            Step::File => self.file(id).await,
            Step::Propose(pid) => self.propose(id, pid).await,
            Step::Approve(pid) => self.approve(id, pid).await,
            Step::Done => Step::Done,
        }
    }

    async fn file(&mut self, id: Uuid) -> Step {
        let Some(case) = self
            .call(Method::GET, &format!("/v1/cases/{id}"), None)
            .await
        else {
            return Step::File;
        };
        match case["state"].as_str() {
            Some("reported") => {}
            // Filed by an earlier attempt whose answer was lost.
            Some("filed") => return Step::Propose(Uuid::now_v7()),
            other => {
                self.wrong.push(format!("case {id} in state {other:?}"));
                return Step::Done;
            }
        }
        let body = json!({"action": "file", "base_version": case["version"]});
        match self
            .call_status(
                Method::POST,
                &format!("/v1/cases/{id}/transitions"),
                Some(body),
            )
            .await
        {
            Some((StatusCode::OK, _)) => Step::Propose(Uuid::now_v7()),
            // A phone commented in between: read the case again next round.
            Some((StatusCode::CONFLICT, b)) if b["code"] == "stale_version" => Step::File,
            Some((status, b)) => {
                self.wrong.push(format!("file {id}: {status} {b}"));
                Step::File
            }
            None => Step::File,
        }
    }

    async fn propose(&mut self, id: Uuid, pid: Uuid) -> Step {
        let body =
            json!({"proposal_id": pid, "case_id": id, "rule_code": RULE, "note": "crash test"});
        match self
            .call_status(Method::POST, "/v1/deductions", Some(body))
            .await
        {
            // 200: a resend, answered with the proposal an attempt whose answer was lost made.
            Some((StatusCode::CREATED | StatusCode::OK, p)) if p["id"] == json!(pid) => {
                Step::Approve(pid)
            }
            Some((status, b)) => {
                self.wrong.push(format!("propose on {id}: {status} {b}"));
                Step::Propose(pid)
            }
            None => Step::Propose(pid),
        }
    }

    async fn approve(&mut self, id: Uuid, pid: Uuid) -> Step {
        let path = format!("/v1/deductions/{pid}/approve");
        match self.call_status(Method::POST, &path, Some(json!({}))).await {
            Some((StatusCode::OK, entry)) => self.acknowledged(id, pid, &entry["id"]),
            Some((StatusCode::CONFLICT, b)) if b["code"] == "conflict" => {
                // Already decided: by an earlier attempt of ours whose answer was lost.
                let Some(p) = self
                    .call(Method::GET, &format!("/v1/deductions/{pid}"), None)
                    .await
                else {
                    return Step::Approve(pid);
                };
                if p["status"] == "approved" {
                    self.acknowledged(id, pid, &p["ledger_entry_id"])
                } else {
                    self.wrong
                        .push(format!("approve {pid}: 409, but the proposal is {p}"));
                    Step::Done
                }
            }
            Some((status, b)) => {
                self.wrong.push(format!("approve {pid}: {status} {b}"));
                Step::Approve(pid)
            }
            None => Step::Approve(pid),
        }
    }

    fn acknowledged(&mut self, case_id: Uuid, proposal_id: Uuid, entry: &Value) -> Step {
        match entry.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
            Some(entry_id) => self.approvals.push(AckedApproval {
                proposal_id,
                entry_id,
                case_id,
            }),
            None => self
                .wrong
                .push(format!("approval of {proposal_id} names no entry: {entry}")),
        }
        Step::Done
    }
}

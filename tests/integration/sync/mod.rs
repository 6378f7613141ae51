//! Offline sync, operation by operation: exactly-once push, integrity, scope, conflicts, pull.

mod integrity;
mod pull;
mod push;
mod scope;

use serde_json::Value;

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) use scope::what_reaches;

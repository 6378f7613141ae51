//! The simulated devices: a reference client each, with its own outbox, and one step of its
//! offline life at a time (capture, edit, comment, transition, sync).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gridline_sync::client::{
    Client, ClientError, HttpTransport, RecordingSleeper, RetryPolicy, Store,
};
use gridline_sync::ops::{
    CaseChanges, CaseCommentV1, CaseEditV1, CaseTransitionV1, PhotoManifest, PhotoRole, Severity,
    TransitionAction,
};
use gridline_sync::{EntityKind, Operation};
use gridline_testkit::kit::{self, Watched};
use gridline_testkit::TestApp;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::network::{Faults, FaultyTransport, Network};
use super::CATEGORIES;

pub(super) type Phone = Client<FaultyTransport, RecordingSleeper>;

pub(super) struct Device {
    pub(super) username: String,
    pub(super) supervisor: bool,
    /// Inspectors: the demo zone index and id they work in.
    pub(super) zone: Option<(usize, Uuid)>,
    pub(super) client: Phone,
    /// Cases captured on this phone.
    pub(super) own: Vec<Uuid>,
    pub(super) made: u32,
}

impl Device {
    /// A new description nobody else ever writes, so every write of it is a real change.
    pub(super) fn fresh_text(&mut self, what: &str) -> String {
        self.made += 1;
        format!("{what} {} #{}", self.username, self.made)
    }

    /// Cases this phone can name: its mirror and its own captures, with the version it last saw.
    pub(super) async fn known_cases(&self) -> Vec<(Uuid, i64)> {
        let mut known: BTreeMap<Uuid, i64> = self
            .client
            .mirror(EntityKind::Case)
            .await
            .expect("mirror")
            .into_iter()
            .filter_map(|m| Some((Uuid::parse_str(&m.id).ok()?, m.version)))
            .collect();
        for id in &self.own {
            known.entry(*id).or_insert(1);
        }
        known.into_iter().collect()
    }

    pub(super) async fn capture(&self, op: Operation) {
        self.client
            .capture(op, &[])
            .await
            .unwrap_or_else(|e| panic!("{}: capture: {e}", self.username));
    }

    /// Syncs; a network failure is fine (the phone tries again later), anything else is not.
    pub(super) async fn sync(&self) {
        match self.client.sync().await {
            Ok(_) => {}
            Err(ClientError::Transport(e)) if e.is_transient() => {}
            Err(e) => panic!("{}: sync failed: {e}", self.username),
        }
    }
}

pub(super) async fn enrol(
    app: &TestApp,
    dir: &std::path::Path,
    net: &Arc<Network>,
    seed: u64,
    i: usize,
    username: &str,
) -> Device {
    let store = Store::open(&dir.join(format!("{username}.db")))
        .await
        .expect("store");
    let transport = Watched {
        inner: HttpTransport::new(&app.base).expect("transport"),
        watch: Faults {
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ ((i as u64 + 1) << 48))),
            net: net.clone(),
        },
    };
    let client =
        Client::new(store, transport, RecordingSleeper::default()).with_policy(RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        });
    client
        .enrol(
            &app.base,
            username,
            gridline_server::demo::DEMO_PASSWORD,
            &format!("{username}'s phone"),
        )
        .await
        .expect("enrol");
    let zone = username
        .strip_prefix("inspector")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| {
            let index = (n - 1) / 2;
            (index, app.zone(&format!("Z0{}", index + 1)))
        });
    Device {
        username: username.to_owned(),
        supervisor: username.starts_with("supervisor"),
        zone,
        client,
        own: Vec::new(),
        made: 0,
    }
}

pub(super) fn create_op(device: &mut Device, rng: &mut StdRng) -> (Uuid, Operation) {
    let (index, zone_id) = device.zone.expect("inspectors have a zone");
    let mut case = kit::capture(zone_id, index, &device.fresh_text("captured by"));
    case.category_code = CATEGORIES
        .choose(rng)
        .copied()
        .unwrap_or("event:0102")
        .to_owned();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(case.case_id.as_bytes()))
    };
    case.photos = vec![PhotoManifest {
        sha256: sha,
        size: 100_000,
        captured_at: case.captured_at,
        gps: None,
        role: PhotoRole::Before,
    }];
    (case.case_id, Operation::CaseCreateV1(case))
}

pub(super) fn edit_op(
    device: &mut Device,
    rng: &mut StdRng,
    case_id: Uuid,
    base_version: i64,
) -> Operation {
    let severities = [Severity::Low, Severity::Medium, Severity::High];
    let mut changes = CaseChanges {
        description: Some(device.fresh_text("edited by")),
        ..CaseChanges::default()
    };
    // Supervisors reclassify; inspectors sometimes do too.
    if device.supervisor || rng.gen_bool(0.5) {
        changes.category_code = CATEGORIES.choose(rng).map(|c| (*c).to_owned());
    }
    if rng.gen_bool(0.3) {
        changes.severity = severities.choose(rng).copied();
    }
    Operation::CaseEditV1(CaseEditV1 {
        case_id,
        base_version,
        changes,
    })
}

pub(super) fn comment_op(device: &mut Device, case_id: Uuid) -> Operation {
    Operation::CaseCommentV1(CaseCommentV1 {
        case_id,
        comment_id: Uuid::now_v7(),
        text: device.fresh_text("comment by"),
    })
}

/// One step of a device's offline life.
pub(super) async fn act(
    device: &mut Device,
    rng: &mut StdRng,
    everyone: &[(Uuid, usize)],
) -> Option<(Uuid, usize)> {
    let known = device.known_cases().await;
    let roll = rng.gen_range(0..100);
    if !device.supervisor && (known.is_empty() || roll < 35) {
        let (case_id, op) = create_op(device, rng);
        device.capture(op).await;
        device.own.push(case_id);
        return device.zone.map(|(index, _)| (case_id, index));
    }
    let &(case_id, version) = known.choose(rng)?;
    let op = match (device.supervisor, roll) {
        (true, 0..=59) | (false, 35..=64) => edit_op(device, rng, case_id, version),
        (true, _) | (false, 65..=84) => comment_op(device, case_id),
        (false, 85..=91) => match device.own.choose(rng) {
            Some(own) => Operation::CaseTransitionV1(CaseTransitionV1 {
                case_id: *own,
                base_version: known
                    .iter()
                    .find(|(id, _)| id == own)
                    .map_or(1, |(_, v)| *v),
                action: TransitionAction::Withdraw,
                comment: Some("captured by mistake".into()),
                photos: vec![],
            }),
            None => comment_op(device, case_id),
        },
        // A case from another zone, heard of by word of mouth: must be refused, visibly.
        (false, _) => {
            let my_zone = device.zone.map(|(i, _)| i);
            match everyone
                .iter()
                .filter(|(_, z)| Some(*z) != my_zone)
                .collect::<Vec<_>>()
                .choose(rng)
            {
                Some((foreign, _)) => edit_op(device, rng, *foreign, 1),
                None => comment_op(device, case_id),
            }
        }
    };
    device.capture(op).await;
    None
}

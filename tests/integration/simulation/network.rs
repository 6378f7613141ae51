//! The simulated network between the phones and the server: requests dropped, answered busy,
//! answered to no one, duplicated, or held back behind other devices' syncs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridline_sync::client::{Transport, TransportError};
use gridline_testkit::kit::{Call, Fate, HeldPush, Watch, Watched};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Fault {
    /// The request never leaves the phone.
    DropRequest,
    /// A proxy answers 503 without asking the server.
    Busy,
    /// The server processes the request; the phone never hears back.
    DropResponse,
    /// The request arrives twice; the phone hears one of the answers.
    Duplicate,
    /// The request is held in the network and arrives later, behind other devices' syncs; the
    /// phone times out meanwhile.
    Delay,
}

/// What all the phones' links share: whether faults are on, the held-back requests, and what
/// the real server answered with 5xx (which a healthy server never does here).
#[derive(Default)]
pub(super) struct Network {
    pub(super) faults: AtomicBool,
    pub(super) delayed: Mutex<Vec<HeldPush>>,
    pub(super) injected: Mutex<HashMap<Fault, u32>>,
    pub(super) server_errors: Mutex<Vec<String>>,
}

impl Network {
    pub(super) fn observe(&self, what: &str, error: Option<&TransportError>) {
        let status = match error {
            Some(TransportError::Busy { status, .. }) => *status,
            Some(TransportError::Http { status, .. }) => *status,
            _ => return,
        };
        if status >= 500 {
            self.server_errors
                .lock()
                .unwrap()
                .push(format!("{what}: HTTP {status}"));
        }
    }

    /// Delivers every held-back request, in a shuffled order; the answers go nowhere.
    pub(super) async fn deliver_delayed(&self, rng: &mut StdRng) {
        let mut held = std::mem::take(&mut *self.delayed.lock().unwrap());
        held.shuffle(rng);
        for push in held {
            let result = push.transport.push(push.token, &push.request).await;
            self.observe("late push", result.as_ref().err());
        }
    }

    pub(super) fn count(&self, fault: Fault) {
        *self.injected.lock().unwrap().entry(fault).or_default() += 1;
    }
}

/// One phone's link: [`HttpTransport`] with faults drawn from the phone's own seeded RNG, on
/// pushes and pulls.
pub(super) type FaultyTransport = Watched<Faults>;

/// The faults of one phone's link, and the network they are counted in.
pub(super) struct Faults {
    pub(super) rng: Mutex<StdRng>,
    pub(super) net: Arc<Network>,
}

impl Faults {
    fn pick(&self, push: bool) -> Option<Fault> {
        if !self.net.faults.load(Ordering::SeqCst) {
            return None;
        }
        let roll = self.rng.lock().unwrap().gen_range(0..100);
        let fault = match (push, roll) {
            (_, 0..=7) => Fault::DropRequest,
            (_, 8..=12) => Fault::Busy,
            (_, 13..=24) => Fault::DropResponse,
            (true, 25..=34) => Fault::Duplicate,
            (true, 35..=44) => Fault::Delay,
            _ => return None,
        };
        self.net.count(fault);
        Some(fault)
    }
}

fn lost(what: &str) -> TransportError {
    TransportError::Network(what.to_owned())
}

impl Watch for Faults {
    fn fate(&self, call: Call) -> Fate {
        let push = match call {
            Call::Push => true,
            Call::Pull => false,
            _ => return Fate::Send,
        };
        match self.pick(push) {
            None => Fate::Send,
            Some(Fault::DropRequest) => Fate::Refuse(lost("dropped before sending")),
            Some(Fault::Busy) => Fate::Refuse(TransportError::Busy {
                status: 503,
                retry_after: push.then_some(Duration::from_secs(1)),
            }),
            Some(Fault::DropResponse) => Fate::LoseAnswer(lost("response lost")),
            Some(Fault::Duplicate) => Fate::Duplicate {
                answer_first: self.rng.lock().unwrap().gen_bool(0.5),
            },
            Some(Fault::Delay) => {
                Fate::Hold(lost("timed out; the request is still in the network"))
            }
        }
    }

    fn held(&self, push: HeldPush) {
        self.net.delayed.lock().unwrap().push(push);
    }

    fn after(&self, call: Call, error: Option<&TransportError>) {
        match call {
            Call::Push => self.net.observe("push", error),
            Call::Pull => self.net.observe("pull", error),
            _ => {}
        }
    }
}

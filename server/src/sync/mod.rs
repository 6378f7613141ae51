//! Offline sync: push (exactly-once application of signed operations) and pull (commit-ordered
//! changes in the caller's scope), plus the case views both the API and pulls serve.

pub mod pull;
pub mod push;
pub mod view;

use std::sync::Arc;

use crate::auth::keys::Keyring;
use crate::config::Config;
use crate::photos::PhotoService;
use crate::store::Db;

/// What a push needs: the database, the key that signs receipts, the settings, the admission
/// slots (as many batches at once as there are database connections) and the photo service (a
/// photo declared again is flagged for its new case after commit). Cheap to clone.
#[derive(Clone)]
pub struct SyncService {
    pub db: Db,
    pub keys: Arc<Keyring>,
    pub config: Arc<Config>,
    pub push_slots: Arc<tokio::sync::Semaphore>,
    pub photos: PhotoService,
}

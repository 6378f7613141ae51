//! Shared application state, built once at start.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use object_store::ObjectStore;

use crate::auth::keys::Keyring;
use crate::config::Config;
use crate::store::Db;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub keys: Arc<Keyring>,
    pub blobs: Arc<dyn ObjectStore>,
    pub metrics: PrometheusHandle,
    pub rate_limiter: Arc<crate::ratelimit::RateLimiter>,
    pub photos: Arc<crate::photos::Runtime>,
    /// Admission to `/v1/sync/push`: as many batches at once as there are database
    /// connections. More would only queue on the pool (and on the change-log lock) while
    /// holding memory and CPU; see `sync::push`.
    pub push_slots: Arc<tokio::sync::Semaphore>,
    /// The open periods' rankings, kept between requests (`ledger::rankings`).
    pub rankings: Arc<crate::ledger::rankings::Rankings>,
}

impl AppState {
    /// Connects the database (applying migrations), loads or creates the signing keys and opens
    /// the blob store.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let db = Db::connect_with_write_wait(
            &config.database_url(),
            config.database_max_connections,
            std::time::Duration::from_millis(config.database_write_wait_ms),
        )
        .await?;
        let keys = Keyring::load_or_create(&config.key_file())?;
        keys.check_in(&db, &config.key_file()).await?;
        let blobs = crate::blob::open(&config)?;
        let rate_limiter = Arc::new(crate::ratelimit::RateLimiter::new(
            config.limits.requests_per_minute,
            config.limits.request_burst,
        ));
        let photos = Arc::new(crate::photos::Runtime::new(&config, &keys)?);
        let push_slots = Arc::new(tokio::sync::Semaphore::new(
            config.database_max_connections.max(1) as usize,
        ));
        Ok(AppState {
            push_slots,
            rankings: Default::default(),
            rate_limiter,
            config: Arc::new(config),
            db,
            keys: Arc::new(keys),
            blobs,
            metrics: crate::telemetry::metrics_handle(),
            photos,
        })
    }

    /// The ledger service's share of the state.
    pub fn ledger_service(&self) -> crate::ledger::LedgerService {
        crate::ledger::LedgerService {
            db: self.db.clone(),
            keys: self.keys.clone(),
            config: self.config.clone(),
            rankings: self.rankings.clone(),
        }
    }

    /// The sync service's share of the state.
    pub fn sync_service(&self) -> crate::sync::SyncService {
        crate::sync::SyncService {
            db: self.db.clone(),
            keys: self.keys.clone(),
            config: self.config.clone(),
            push_slots: self.push_slots.clone(),
            photos: self.photo_service(),
        }
    }

    /// The token service's share of the state.
    pub fn token_service(&self) -> crate::auth::tokens::TokenService {
        crate::auth::tokens::TokenService {
            db: self.db.clone(),
            keys: self.keys.clone(),
            config: self.config.clone(),
        }
    }

    /// The photo service's share of the state.
    pub fn photo_service(&self) -> crate::photos::PhotoService {
        crate::photos::PhotoService {
            db: self.db.clone(),
            blobs: self.blobs.clone(),
            config: self.config.clone(),
            runtime: self.photos.clone(),
        }
    }
}

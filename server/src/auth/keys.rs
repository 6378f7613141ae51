//! The server's Ed25519 keys: they sign access tokens (EdDSA JWTs, `kid` in the header), push
//! receipts and ledger checkpoints (`ledger::log`). Generated on first start and kept in a file
//! beside the data; rotation adds a key: the newest signs, every key in the file still verifies.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use crate::store::now_ms;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    created_at: i64,
    /// Base64 of the 32-byte Ed25519 seed.
    seed: String,
}

pub struct ServerKey {
    pub kid: String,
    pub signing: SigningKey,
    pub encoding: EncodingKey,
}

pub struct Keyring {
    /// The key that signs new tokens and receipts (the newest).
    pub current: ServerKey,
    decoding: HashMap<String, DecodingKey>,
    verifying: HashMap<String, VerifyingKey>,
}

impl Keyring {
    /// Loads the key file, creating it with one fresh key if it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Keyring> {
        if !path.exists() {
            let file = KeyFile {
                keys: vec![new_key()],
            };
            write_key_file(path, &file)?;
        }
        if crate::private_fs::readable_by_others(path) {
            tracing::warn!(
                path = %path.display(),
                "the key file (setting `auth.key_file`) is readable by other users: \
                 anyone who can read it can sign tokens; `chmod 600` it"
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("key file {} is not valid: {e}", path.display()))?;
        Self::from_file(file)
    }

    /// Adds a new signing key to the file (old keys keep verifying until removed by hand).
    pub fn rotate(path: &Path) -> anyhow::Result<String> {
        let mut file: KeyFile = if path.exists() {
            serde_json::from_str(&std::fs::read_to_string(path)?)?
        } else {
            KeyFile { keys: vec![] }
        };
        let key = new_key();
        let kid = key.kid.clone();
        file.keys.push(key);
        write_key_file(path, &file)?;
        Ok(kid)
    }

    /// An ephemeral keyring, for tests and tools.
    pub fn ephemeral() -> anyhow::Result<Keyring> {
        Self::from_file(KeyFile {
            keys: vec![new_key()],
        })
    }

    fn from_file(file: KeyFile) -> anyhow::Result<Keyring> {
        let mut decoding = HashMap::new();
        let mut verifying = HashMap::new();
        let mut newest: Option<(i64, ServerKey)> = None;
        for stored in file.keys {
            let seed = STANDARD.decode(&stored.seed)?;
            let seed: [u8; 32] = seed
                .try_into()
                .map_err(|_| anyhow::anyhow!("key {} has a bad seed", stored.kid))?;
            let signing = SigningKey::from_bytes(&seed);
            let public = signing.verifying_key();
            decoding.insert(
                stored.kid.clone(),
                DecodingKey::from_ed_der(public.as_bytes()),
            );
            verifying.insert(stored.kid.clone(), public);
            let der = signing
                .to_pkcs8_der()
                .map_err(|e| anyhow::anyhow!("pkcs8: {e}"))?;
            let key = ServerKey {
                kid: stored.kid,
                encoding: EncodingKey::from_ed_der(der.as_bytes()),
                signing,
            };
            if newest
                .as_ref()
                .is_none_or(|(at, _)| stored.created_at >= *at)
            {
                newest = Some((stored.created_at, key));
            }
        }
        let (_, current) = newest.ok_or_else(|| anyhow::anyhow!("the key file has no keys"))?;
        Ok(Keyring {
            current,
            decoding,
            verifying,
        })
    }

    /// Checks this keyring against the keys that have signed on `db`, then records its
    /// current key there. Refuses (naming `auth.key_file`) a keyring that lacks the newest key
    /// in use: the instance would answer the other instances' tokens with 401 and sign tokens
    /// they cannot verify. A rotated key file (the old keys and a new one) passes, and its new
    /// key becomes the newest in use.
    pub async fn check_in(&self, db: &crate::store::Db, key_file: &Path) -> anyhow::Result<()> {
        use crate::store::signing_keys;
        let mut tx = db.begin_write().await?;
        signing_keys::lock(&mut tx).await?;
        if let Some(newest) = signing_keys::newest(tx.conn()).await? {
            let holds_it = self
                .verifying
                .get(&newest.kid)
                .is_some_and(|key| STANDARD.encode(key.as_bytes()) == newest.public_key);
            if !holds_it {
                anyhow::bail!(
                    "invalid configuration: setting `auth.key_file`: {} does not hold the key \
                     that signs this database's tokens (key id {}, in use since {}); every \
                     instance on one database must use the same key file or a copy of it. If \
                     that key file is lost for good, `gridline admin adopt-key-file` makes this \
                     one the key file in use (every token signed before stops working).",
                    key_file.display(),
                    newest.kid,
                    crate::store::rfc3339(newest.first_used_at),
                );
            }
        }
        let current = self.current_public_b64();
        if signing_keys::record(tx.conn(), &self.current.kid, &current, now_ms(), false).await? {
            tracing::info!(kid = %self.current.kid, "signing with a new key");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes this keyring's current key the newest in use on `db`, whatever signed before
    /// (after a key file is lost): instances with other key files then refuse to start.
    pub async fn adopt(&self, db: &crate::store::Db) -> anyhow::Result<()> {
        let mut tx = db.begin_write().await?;
        crate::store::signing_keys::lock(&mut tx).await?;
        crate::store::signing_keys::record(
            tx.conn(),
            &self.current.kid,
            &self.current_public_b64(),
            now_ms(),
            true,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.decoding.get(kid)
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    pub fn current_public_b64(&self) -> String {
        STANDARD.encode(self.current.signing.verifying_key().as_bytes())
    }
}

fn new_key() -> StoredKey {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    StoredKey {
        kid: gridline_sync::signing::key_id(&signing.verifying_key()),
        created_at: now_ms(),
        seed: STANDARD.encode(signing.to_bytes()),
    }
}

fn write_key_file(path: &Path, file: &KeyFile) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        crate::private_fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    crate::private_fs::write_new(&tmp, &serde_json::to_vec_pretty(file)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl crate::ledger::log::CheckpointKeys for Keyring {
    fn signer(&self) -> (&str, &SigningKey) {
        (&self.current.kid, &self.current.signing)
    }
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        Keyring::verifying_key(self, kid)
    }
}

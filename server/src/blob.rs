//! The blob store: local folder (embedded default), memory (tests) or any S3-compatible store,
//! all behind `object_store::ObjectStore`.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::signer::Signer;
use object_store::ObjectStore;

use crate::config::{BlobBackend, Config};

pub fn open(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match config.blob.backend {
        BlobBackend::Memory => Arc::new(InMemory::new()),
        BlobBackend::Local => {
            let path = config.blob_path();
            std::fs::create_dir_all(&path).map_err(|e| {
                anyhow::anyhow!("setting `blob.path`: cannot create {}: {e}", path.display())
            })?;
            Arc::new(LocalFileSystem::new_with_prefix(&path)?)
        }
        BlobBackend::S3 => Arc::new(s3(config)?),
    })
}

fn s3(config: &Config) -> anyhow::Result<AmazonS3> {
    let s3 = &config.blob.s3;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(&s3.access_key_id)
        .with_secret_access_key(s3.secret_access_key.expose())
        .with_virtual_hosted_style_request(!s3.path_style)
        // Nothing here relies on conditional puts (originals are content-addressed), and
        // S3-compatible stores such as Garage ignore `If-None-Match` on PUT.
        .with_conditional_put(S3ConditionalPut::Disabled);
    if !s3.region.is_empty() {
        builder = builder.with_region(&s3.region);
    }
    if !s3.endpoint.is_empty() {
        builder = builder
            .with_endpoint(&s3.endpoint)
            .with_allow_http(s3.endpoint.starts_with("http://"));
    }
    Ok(builder.build()?)
}

/// The presigner of short-lived photo links: only S3 stores have one.
pub fn signer(config: &Config) -> anyhow::Result<Option<Arc<dyn Signer>>> {
    Ok(match config.blob.backend {
        BlobBackend::S3 => Some(Arc::new(s3(config)?)),
        BlobBackend::Local | BlobBackend::Memory => None,
    })
}

/// Reachability: a HEAD of a key that need not exist. "Not found" means the store answered.
pub async fn ping(store: &dyn ObjectStore) -> Result<(), object_store::Error> {
    match store.head(&object_store::path::Path::from("_readyz")).await {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

//! The blob store: local folder (embedded default), memory (tests) or any S3-compatible store,
//! all behind `object_store::ObjectStore`.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::{BlobBackend, Config};

pub fn open(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match config.blob.backend {
        BlobBackend::Memory => Arc::new(InMemory::new()),
        BlobBackend::Local => {
            let path = config.blob_path();
            crate::private_fs::create_dir_all(&path).map_err(|e| {
                anyhow::anyhow!("setting `blob.path`: cannot create {}: {e}", path.display())
            })?;
            Arc::new(LocalFileSystem::new_with_prefix(&path)?)
        }
        BlobBackend::S3 => Arc::new(s3(config)?),
    })
}

/// One S3 request may take this long (a 5 MiB multipart part included) before it is abandoned.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// No retry starts later than this after the first attempt.
const S3_RETRY_WINDOW: Duration = Duration::from_secs(8);

/// Bounded timeouts and retries, so that a store that stops answering (a partition, not only a
/// refusal) fails a request within about [`S3_REQUEST_TIMEOUT`] + [`S3_RETRY_WINDOW`]: the
/// client gets 503 with Retry-After well before its own timeout and the server's request
/// timeout, instead of waiting out the S3 client's defaults (30 s per request, retries for
/// up to 3 minutes).
fn s3_limits(builder: AmazonS3Builder) -> AmazonS3Builder {
    builder
        .with_client_options(
            ClientOptions::new()
                .with_timeout(S3_REQUEST_TIMEOUT)
                .with_connect_timeout(S3_CONNECT_TIMEOUT),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: S3_RETRY_WINDOW,
        })
}

fn s3(config: &Config) -> anyhow::Result<AmazonS3> {
    let s3 = &config.blob.s3;
    let mut builder = s3_limits(AmazonS3Builder::new())
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

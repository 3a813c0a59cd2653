//! Where tenants' data keys live: AWS Secrets Manager in production (one secret per tenant
//! under `TENANT_KEY_SECRET_PREFIX`), a local directory in development. Keys are cached in
//! the warm process for a short TTL; a version the cache does not know forces one re-read,
//! so a rotation done elsewhere is picked up at once.

use anyhow::{anyhow, Context};
use aws_sdk_secretsmanager::Client as SecretsClient;
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{DataKey, KeyRing};
use crate::domain::TenantId;

/// The JSON stored per tenant: `{"current": 2, "keys": {"1": "<base64>", "2": "<base64>"}}`.
#[derive(Serialize, Deserialize)]
struct StoredRing {
    current: u32,
    keys: BTreeMap<u32, String>,
}

fn ring_to_json(ring: &KeyRing) -> String {
    let stored = StoredRing {
        current: ring.current,
        keys: ring.versions().map(|(v, k)| (v, k.to_base64())).collect(),
    };
    serde_json::to_string(&stored).expect("a key ring always serialises")
}

fn ring_from_json(tenant_id: TenantId, json: &str) -> anyhow::Result<KeyRing> {
    // The error never quotes the JSON: it holds key material.
    let stored: StoredRing = serde_json::from_str(json)
        .map_err(|_| anyhow!("data key document is not valid JSON of the expected shape"))?;
    let mut keys = BTreeMap::new();
    for (v, k) in stored.keys {
        keys.insert(
            v,
            DataKey::from_base64(&k).with_context(|| format!("data key version {v}"))?,
        );
    }
    Ok(KeyRing::from_parts(tenant_id, stored.current, keys)?)
}

/// Where the keys are kept.
#[derive(Clone)]
pub enum KeyBackend {
    /// One Secrets Manager secret per tenant, named `<prefix><tenant id>`.
    SecretsManager {
        client: SecretsClient,
        prefix: String,
    },
    /// One file per tenant, `<dir>/<tenant id>.json`, readable by the owner only.
    LocalDir(PathBuf),
}

impl KeyBackend {
    pub fn describe(&self) -> String {
        match self {
            Self::SecretsManager { prefix, .. } => format!("aws secrets manager (prefix {prefix})"),
            Self::LocalDir(dir) => format!("local directory {}", dir.display()),
        }
    }

    async fn read(&self, tenant_id: TenantId) -> anyhow::Result<Option<String>> {
        match self {
            Self::SecretsManager { client, prefix } => {
                let name = format!("{prefix}{tenant_id}");
                match client.get_secret_value().secret_id(&name).send().await {
                    Ok(out) => Ok(out.secret_string().map(str::to_owned)),
                    Err(err) => {
                        if err
                            .as_service_error()
                            .is_some_and(|e| e.is_resource_not_found_exception())
                        {
                            Ok(None)
                        } else {
                            Err(anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(
                                err
                            )))
                            .context("reading the tenant's data key from Secrets Manager")
                        }
                    }
                }
            }
            Self::LocalDir(dir) => {
                let path = dir.join(format!("{tenant_id}.json"));
                match tokio::fs::read_to_string(&path).await {
                    Ok(s) => Ok(Some(s)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
        }
    }

    async fn write(&self, tenant_id: TenantId, json: String) -> anyhow::Result<()> {
        match self {
            Self::SecretsManager { client, prefix } => {
                let name = format!("{prefix}{tenant_id}");
                let put = client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&json)
                    .send()
                    .await;
                match put {
                    Ok(_) => Ok(()),
                    Err(err)
                        if err
                            .as_service_error()
                            .is_some_and(|e| e.is_resource_not_found_exception()) =>
                    {
                        client
                            .create_secret()
                            .name(&name)
                            .description("Alphadome tenant data keys (AES-256-GCM)")
                            .secret_string(json)
                            .send()
                            .await
                            .map_err(|e| {
                                anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(e))
                            })
                            .context("creating the tenant's data key secret")?;
                        Ok(())
                    }
                    Err(err) => Err(anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(
                        err
                    )))
                    .context("writing the tenant's data key to Secrets Manager"),
                }
            }
            Self::LocalDir(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .with_context(|| format!("creating {}", dir.display()))?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                        .await
                        .with_context(|| format!("restricting {}", dir.display()))?;
                }
                let path = dir.join(format!("{tenant_id}.json"));
                let tmp = dir.join(format!(".{tenant_id}.json.tmp"));
                write_private(&tmp, json.as_bytes()).await?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .with_context(|| format!("replacing {}", path.display()))?;
                Ok(())
            }
        }
    }
}

async fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    Ok(())
}

/// Tenants' key rings, cached.
#[derive(Clone)]
pub struct KeyProvider {
    backend: KeyBackend,
    cache: Cache<TenantId, Arc<KeyRing>>,
}

/// Whether a key-provider error means the key does not exist (permanent: the tenant's data
/// key or that version of it is gone) rather than that the store could not be reached.
pub fn is_missing_key(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("no data key exists") || text.contains("has no data key of version")
}

impl KeyProvider {
    pub fn new(backend: KeyBackend, ttl: Duration) -> Self {
        Self {
            backend,
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The tenant's key ring (cached).
    pub async fn ring(&self, tenant_id: TenantId) -> anyhow::Result<Arc<KeyRing>> {
        let backend = self.backend.clone();
        self.cache
            .try_get_with(tenant_id, async move {
                let json = backend
                    .read(tenant_id)
                    .await?
                    .ok_or_else(|| anyhow!("no data key exists for tenant {tenant_id}"))?;
                ring_from_json(tenant_id, &json).map(Arc::new)
            })
            .await
            .map_err(|e: Arc<anyhow::Error>| anyhow!("{e:#}"))
    }

    /// The tenant's key ring, guaranteed to know `version` if the backend does.
    pub async fn ring_with_version(
        &self,
        tenant_id: TenantId,
        version: u32,
    ) -> anyhow::Result<Arc<KeyRing>> {
        let ring = self.ring(tenant_id).await?;
        if ring.has_version(version) {
            return Ok(ring);
        }
        self.cache.invalidate(&tenant_id).await;
        let ring = self.ring(tenant_id).await?;
        if ring.has_version(version) {
            Ok(ring)
        } else {
            Err(anyhow!(
                "tenant {tenant_id} has no data key of version {version}"
            ))
        }
    }

    /// The stored ring, read past the cache; `None` if the tenant has none yet.
    pub async fn load_fresh(&self, tenant_id: TenantId) -> anyhow::Result<Option<KeyRing>> {
        match self.backend.read(tenant_id).await? {
            Some(json) => Ok(Some(ring_from_json(tenant_id, &json)?)),
            None => Ok(None),
        }
    }

    /// Stores a ring (creating the secret or file if needed) and refreshes the cache.
    pub async fn save(&self, ring: &KeyRing) -> anyhow::Result<()> {
        self.backend
            .write(ring.tenant_id, ring_to_json(ring))
            .await?;
        self.cache
            .insert(ring.tenant_id, Arc::new(ring.clone()))
            .await;
        Ok(())
    }

    /// The tenant's ring, created and stored with a fresh key if it has none.
    pub async fn ensure_ring(&self, tenant_id: TenantId) -> anyhow::Result<KeyRing> {
        if let Some(ring) = self.load_fresh(tenant_id).await? {
            return Ok(ring);
        }
        let ring = KeyRing::generate(tenant_id);
        self.save(&ring).await?;
        Ok(ring)
    }
}

impl KeyProvider {
    /// The provider the settings ask for (`KEY_PROVIDER`), with the given cache TTL.
    pub async fn from_settings(
        setting: &crate::config::KeyProviderSetting,
        sdk: Option<&aws_config::SdkConfig>,
        ttl: Duration,
    ) -> Self {
        let backend = match setting {
            crate::config::KeyProviderSetting::Aws { prefix } => {
                let client = match sdk {
                    Some(sdk) => SecretsClient::new(sdk),
                    None => SecretsClient::new(&crate::aws::load_sdk_config().await),
                };
                KeyBackend::SecretsManager {
                    client,
                    prefix: prefix.clone(),
                }
            }
            crate::config::KeyProviderSetting::Local { dir } => KeyBackend::LocalDir(dir.clone()),
        };
        Self::new(backend, ttl)
    }
}

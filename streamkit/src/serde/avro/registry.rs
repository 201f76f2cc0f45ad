//! A cached client of a Confluent-compatible schema registry (through
//! schema_registry_converter's blocking client).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use schema_registry_converter::blocking::schema_registry::{
    SrSettings, get_schema_by_id, perform_sr_call, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SrCall, SuppliedSchema};

use crate::error::SerdeError;

/// A schema registry client shared by every Avro serde built from it (clones share one
/// cache).
///
/// Schemas are cached by id (what a consumer needs) and ids by subject and schema (what a
/// producer needs), so a running topology asks the registry once per schema, never per record;
/// [`requests`](Self::requests) counts the calls made. Failed lookups are not cached: a schema
/// registered later is found on the next record.
///
/// The client blocks the calling thread while it waits for the registry; the first record of
/// each schema pays that wait.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    settings: SrSettings,
    by_id: RwLock<HashMap<u32, Arc<Schema>>>,
    by_subject: RwLock<HashMap<(String, String), u32>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

/// How a [`RegistryClient`] authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryAuth {
    /// No credentials. Default.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication (Confluent Cloud: API key and secret).
    Basic {
        /// The user name or API key.
        user: String,
        /// The password or API secret.
        password: String,
    },
}

impl RegistryClient {
    /// A client of the registry at `url` (e.g. `http://127.0.0.1:8081`), without credentials
    /// and with a 30 s timeout per request.
    pub fn new(url: &str) -> Result<Self, SerdeError> {
        Self::with_auth(url, RegistryAuth::None)
    }

    /// A client of the registry at `url` that authenticates with `auth`.
    pub fn with_auth(url: &str, auth: RegistryAuth) -> Result<Self, SerdeError> {
        let url = url.trim_end_matches('/').to_string();
        let mut b = SrSettings::new_builder(url.clone());
        b.set_timeout(Duration::from_secs(30));
        if is_loopback(&url) {
            // A proxy from the environment cannot reach this machine's own registry.
            b.no_proxy();
        }
        match &auth {
            RegistryAuth::None => {}
            RegistryAuth::Bearer(t) => {
                b.set_token_authorization(t);
            }
            RegistryAuth::Basic { user, password } => {
                b.set_basic_authorization(user, Some(password));
            }
        }
        let settings = b.build().map_err(|e| {
            SerdeError::Registry(format!("cannot build client for {url}: {}", e.error))
        })?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                url,
                settings,
                by_id: RwLock::default(),
                by_subject: RwLock::default(),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// How many HTTP requests this client (and its clones) has sent to the registry.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The Avro schema registered under `id`.
    ///
    /// An id the registry does not know is [`SerdeError::Invalid`] (the record is bad); a
    /// registry that cannot be reached is [`SerdeError::Registry`].
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, SerdeError> {
        if let Some(s) = read(&self.inner.by_id).get(&id) {
            return Ok(s.clone());
        }
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let registered = get_schema_by_id(id, &self.inner.settings).map_err(|e| {
            if not_found(&e) {
                SerdeError::Invalid(format!(
                    "avro: schema id {id} is not registered at {}",
                    self.inner.url
                ))
            } else {
                registry_error(&self.inner.url, &e)
            }
        })?;
        if registered.schema_type != SchemaType::Avro {
            return Err(SerdeError::Invalid(format!(
                "avro: schema id {id} is a {:?} schema, not avro",
                registered.schema_type
            )));
        }
        let schema = Schema::parse_str(&registered.schema).map_err(|e| {
            SerdeError::Invalid(format!("avro: schema id {id} does not parse: {e}"))
        })?;
        let schema = Arc::new(schema);
        write(&self.inner.by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// Registers `schema` under `subject` (idempotent: a schema already registered gets its
    /// id back) and returns its id. The registry refuses a schema incompatible with the
    /// subject's earlier versions.
    pub fn register(&self, subject: &str, schema: &Schema) -> Result<u32, SerdeError> {
        self.id_for(subject, schema, true)
    }

    /// The id of `schema` under `subject`, which must already be registered there.
    pub fn lookup(&self, subject: &str, schema: &Schema) -> Result<u32, SerdeError> {
        self.id_for(subject, schema, false)
    }

    /// The latest schema registered under `subject`, and its id (not cached: for set-up, such
    /// as taking a SQL source's columns from its schema).
    pub fn latest(&self, subject: &str) -> Result<(u32, Arc<Schema>), SerdeError> {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let raw =
            perform_sr_call(&self.inner.settings, SrCall::GetLatest(subject)).map_err(|e| {
                if not_found(&e) {
                    SerdeError::Registry(format!("no schema is registered under subject {subject}"))
                } else {
                    registry_error(&self.inner.url, &e)
                }
            })?;
        let (Some(id), Some(text)) = (raw.id, raw.schema) else {
            return Err(SerdeError::Registry(format!(
                "the latest version of {subject} came without id or schema"
            )));
        };
        let schema = Schema::parse_str(&text).map_err(|e| {
            SerdeError::Invalid(format!("avro: schema id {id} does not parse: {e}"))
        })?;
        Ok((id, Arc::new(schema)))
    }

    fn id_for(&self, subject: &str, schema: &Schema, register: bool) -> Result<u32, SerdeError> {
        let canonical = schema.canonical_form();
        let key = (subject.to_string(), canonical);
        if let Some(id) = read(&self.inner.by_subject).get(&key) {
            return Ok(*id);
        }
        let text = serde_json::to_string(schema)
            .map_err(|e| SerdeError::Encode(format!("avro: cannot write schema: {e}")))?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let id = if register {
            let name = schema.name().map(|n| n.fullname(None));
            post_schema(
                &self.inner.settings,
                subject.to_string(),
                SuppliedSchema::new(name, SchemaType::Avro, text),
            )
            .map(|r| r.id)
            .map_err(|e| {
                SerdeError::Registry(format!(
                    "cannot register schema under subject {subject} at {}: {}",
                    self.inner.url,
                    describe(&e)
                ))
            })?
        } else {
            let body = serde_json::json!({ "schema": text }).to_string();
            let found = perform_sr_call(&self.inner.settings, SrCall::PostForVersion(subject, &body))
                .map_err(|e| {
                    if not_found(&e) {
                        SerdeError::Encode(format!(
                            "avro: schema is not registered under subject {subject} and auto-registration is off"
                        ))
                    } else {
                        registry_error(&self.inner.url, &e)
                    }
                })?;
            found.id.ok_or_else(|| {
                SerdeError::Registry(format!("lookup under subject {subject} returned no id"))
            })?
        };
        write(&self.inner.by_subject).insert(key, id);
        // The producer's own schema is also the reader of what it wrote.
        write(&self.inner.by_id)
            .entry(id)
            .or_insert_with(|| Arc::new(schema.clone()));
        Ok(id)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn is_loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host == "localhost" || host.starts_with("127.") || url.contains("://[::1]")
}

/// Whether the registry answered 404 (unknown schema, subject or version).
fn not_found(e: &SRCError) -> bool {
    !e.retriable && e.error.contains("404")
}

fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(c) => format!("{} ({c})", e.error.to_lowercase()),
        None => e.error.to_lowercase(),
    }
}

fn registry_error(url: &str, e: &SRCError) -> SerdeError {
    SerdeError::Registry(format!("{url}: {}", describe(e)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_urls_skip_proxies() {
        assert!(super::is_loopback("http://127.0.0.1:8081"));
        assert!(super::is_loopback("http://localhost:8081/"));
        assert!(super::is_loopback("http://[::1]:8081"));
        assert!(!super::is_loopback("https://psrc-123.confluent.cloud"));
    }
}

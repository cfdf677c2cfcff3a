//! The online feature store in the serving core: [`OnlineHandle`] opens the store lazily (a
//! store that is down at startup does not stop the server) and caches view schemas;
//! [`OnlineFill`] completes entity-keyed requests with stored features, under a concurrency
//! limit and a deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use vane_protocol::{EntityRequest, KeyColumn};
use vane_registry::OnlineSpec;

use vane_online::{EntityKey, KeyBuilder, Lookup, OnlineStore, StoreError, ViewSchema};

use super::error::ApiError;
use super::model::LoadedModel;

/// One view's stored layout and one lookup per requested key.
pub type ViewLookups = (Arc<ViewSchema>, Vec<Lookup>);

/// One view to read: its name, TTL and the keys to read.
pub struct ViewRead {
    pub view: String,
    pub ttl_s: Option<u64>,
    pub keys: Vec<EntityKey>,
}

/// Lookups for entity-keyed requests. Blocking: call from `spawn_blocking`.
pub struct OnlineHandle {
    spec: String,
    store: Mutex<Option<Arc<dyn OnlineStore>>>,
    schemas: Mutex<HashMap<String, Arc<ViewSchema>>>,
}

impl OnlineHandle {
    pub fn new(spec: String) -> Self {
        Self {
            spec,
            store: Mutex::new(None),
            schemas: Mutex::new(HashMap::new()),
        }
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The store, opening it on first use (and again after a failed open).
    pub fn store(&self) -> Result<Arc<dyn OnlineStore>, StoreError> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.as_ref() {
            return Ok(s.clone());
        }
        let s = vane_online::open_store(&self.spec)?;
        *guard = Some(s.clone());
        Ok(s)
    }

    /// A view's stored layout (cached; re-read when its rows no longer match it).
    pub fn schema(
        &self,
        store: &dyn OnlineStore,
        view: &str,
    ) -> Result<Arc<ViewSchema>, StoreError> {
        if let Some(s) = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(view)
        {
            return Ok(s.clone());
        }
        let fields = store.read_schema(view)?.ok_or_else(|| {
            StoreError::Unavailable(format!("online view {view:?} was never materialized"))
        })?;
        let fields = Arc::new(fields);
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(view.to_string(), fields.clone());
        Ok(fields)
    }

    /// For each view: its stored layout and one lookup per key.
    pub fn read_views(
        &self,
        views: &[ViewRead],
        now_us: i64,
    ) -> Result<Vec<ViewLookups>, StoreError> {
        let store = self.store()?;
        let mut out = Vec::with_capacity(views.len());
        for ViewRead { view, ttl_s, keys } in views {
            let mut schema = self.schema(&*store, view)?;
            let rows = vane_online::lookup(&*store, view, keys, *ttl_s, now_us)?;
            // Re-read a schema that no longer matches the rows (the view was re-materialized
            // with other fields).
            let stale = rows.iter().any(|l| match l {
                Lookup::Present(r) | Lookup::OutsideMaxAge(r) => {
                    r.values.len() != schema.fields.len()
                }
                Lookup::NotFound => false,
            });
            if stale {
                self.schemas
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(view);
                schema = self.schema(&*store, view)?;
            }
            out.push((schema, rows));
        }
        Ok(out)
    }
}

/// Entity-keyed requests completed from the online store: lookups run on at most
/// `concurrency` blocking threads, each request waits at most `timeout` for its rows.
pub struct OnlineFill {
    handle: Arc<OnlineHandle>,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl OnlineFill {
    pub fn new(handle: Arc<OnlineHandle>, concurrency: usize, timeout: Duration) -> Self {
        Self {
            handle,
            slots: Arc::new(Semaphore::new(concurrency)),
            timeout,
        }
    }

    /// Runs `read` on the store's handle on a bounded set of blocking threads under
    /// `online_timeout` (past it, or with the store down: 503).
    pub async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce(&OnlineHandle, i64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let handle = self.handle.clone();
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        // A slot bounds the blocking threads lookups hold; the slot travels with the thread, so
        // a hung store costs at most `online_concurrency` threads and 503s past the deadline.
        let limit = self.timeout;
        let slots = self.slots.clone();
        let lookup = async move {
            let slot = slots
                .acquire_owned()
                .await
                .map_err(|_| ApiError::NotReady("the online store is shutting down".into()))?;
            tokio::task::spawn_blocking(move || {
                let r = read(&handle, now_us);
                drop(slot);
                r
            })
            .await
            .map_err(|_| ApiError::Internal("online store lookup panicked".into()))?
            .map_err(|e| match e {
                StoreError::Unavailable(_) => ApiError::NotReady(e.to_string()),
                StoreError::Invalid(m) => ApiError::NotReady(m),
                other => ApiError::Internal(other.to_string()),
            })
        };
        tokio::time::timeout(limit, lookup).await.map_err(|_| {
            ApiError::NotReady(format!(
                "the online store did not answer within {} ms (online_timeout_ms)",
                limit.as_millis()
            ))
        })?
    }

    /// For each view: its layout and one lookup per key.
    pub async fn lookup(&self, views: Vec<ViewRead>) -> Result<Vec<ViewLookups>, ApiError> {
        self.run(move |h, now_us| h.read_views(&views, now_us))
            .await
    }

    /// Completes an entity-keyed request: reads the model's online views for the request's ids
    /// (on a bounded set of blocking threads, under `online_timeout`) and fills every value the
    /// client did not send into `input`. A view's row older than its TTL, or no row, gives
    /// missing values (NaN), as the point-in-time join does for training; an entity with no
    /// row in any view is a 404 naming the id; an unreachable or slow store is a 503.
    pub async fn fill(
        &self,
        m: &LoadedModel,
        entities: &EntityRequest,
        input: &mut [f32],
    ) -> Result<(), ApiError> {
        let schema = &m.schema;
        let Some(spec) = schema.signature.online.as_ref() else {
            return Ok(());
        };
        let views: Vec<ViewRead> = spec
            .views
            .iter()
            .map(|v| ViewRead {
                view: v.name.clone(),
                ttl_s: v.ttl_s,
                keys: request_keys(entities, &spec.view_keys(v)),
            })
            .collect();
        let found = self.lookup(views).await?;
        let width = schema.width();
        // As Feast: a view without a row for the entity, or whose row is older than its TTL,
        // gives nulls (NaN to the model, as the training join gives); only an entity with no
        // row in any view is unknown.
        if let Some(r) = (0..entities.rows()).find(|&r| {
            found
                .iter()
                .all(|(_, rows)| matches!(rows[r], Lookup::NotFound))
        }) {
            return Err(ApiError::NotFound(format!(
                "{} not found in any online view ({})",
                describe_entity(spec, entities, r),
                spec.views
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for (view, (fields, rows)) in spec.views.iter().zip(found) {
            let mut cols = Vec::with_capacity(view.features.len());
            for f in &view.features {
                let col = schema.signature.position(f).ok_or_else(|| {
                    ApiError::Internal(format!(
                        "online view {:?} lists unknown input {f:?}",
                        view.name
                    ))
                })?;
                let field = fields
                    .fields
                    .iter()
                    .position(|s| s.name == *f)
                    .ok_or_else(|| {
                        ApiError::NotReady(format!(
                            "online view {:?} has no field {f:?}; materialize it again",
                            view.name
                        ))
                    })?;
                cols.push((col, field));
            }
            for (r, lookup) in rows.iter().enumerate() {
                let row = match lookup {
                    Lookup::Present(row) => Some(row),
                    // Outside max age / not found: the view's features are null.
                    Lookup::OutsideMaxAge(_) | Lookup::NotFound => None,
                };
                for &(col, field) in &cols {
                    if entities.provided(width, r, col) {
                        continue;
                    }
                    // Stored nulls and categories the model never saw reach it as missing (NaN).
                    input[r * width + col] = match row.and_then(|row| row.values.get(field)) {
                        Some(vane_online::Value::Num(x)) => *x as f32,
                        Some(vane_online::Value::Str(s)) => schema.vocab[col]
                            .as_ref()
                            .and_then(|v| v.get(s.as_str()))
                            .map_or(f32::NAN, |c| *c as f32),
                        _ => f32::NAN,
                    };
                }
            }
        }
        Ok(())
    }
}

/// Each row's key for a view whose join keys are `cols` (positions in the request's keys).
pub fn request_keys(entities: &EntityRequest, cols: &[usize]) -> Vec<EntityKey> {
    let mut b = KeyBuilder::new();
    (0..entities.rows())
        .map(|r| {
            for &c in cols {
                match &entities.keys[c] {
                    KeyColumn::Int(v) => b.int(v[r]),
                    KeyColumn::Str(v) => b.str(&v[r]),
                };
            }
            b.finish()
        })
        .collect()
}

/// `applicant_id 7` or `(applicant_id 7, merchant "acme")`, for messages.
fn describe_entity(spec: &OnlineSpec, entities: &EntityRequest, r: usize) -> String {
    let parts: Vec<String> = spec
        .keys
        .iter()
        .zip(&entities.keys)
        .map(|(k, col)| format!("{} {}", k.name, col.show(r)))
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", parts.join(", ")),
    }
}

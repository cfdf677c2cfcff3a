//! The online feature store in the serving core: [`OnlineHandle`] opens the store lazily (a
//! store that is down at startup does not stop the server) and caches view schemas;
//! [`OnlineFill`] completes entity-keyed requests with stored features, under a concurrency
//! limit and a deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use vane_protocol::EntityRequest;

use vane_online::{EntityId, Lookup, OnlineStore, StoreError, StoredField};

use super::error::ApiError;
use super::model::LoadedModel;

/// One view's field layout and one lookup per requested id.
pub type ViewLookups = (Arc<Vec<StoredField>>, Vec<Lookup>);

/// Lookups for entity-keyed requests. Blocking: call from `spawn_blocking`.
pub struct OnlineHandle {
    spec: String,
    store: Mutex<Option<Arc<dyn OnlineStore>>>,
    schemas: Mutex<HashMap<String, Arc<Vec<StoredField>>>>,
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

    fn schema(
        &self,
        store: &dyn OnlineStore,
        view: &str,
    ) -> Result<Arc<Vec<StoredField>>, StoreError> {
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

    /// For each `(view, ttl)`: the view's field layout and one lookup per id.
    pub fn read_views(
        &self,
        views: &[(String, Option<u64>)],
        ids: &[EntityId],
        now_us: i64,
    ) -> Result<Vec<ViewLookups>, StoreError> {
        let store = self.store()?;
        let mut out = Vec::with_capacity(views.len());
        for (view, ttl) in views {
            let mut schema = self.schema(&*store, view)?;
            let rows = vane_online::lookup(&*store, view, ids, *ttl, now_us)?;
            // Re-read a schema that no longer matches the rows (the view was re-materialized
            // with other fields).
            let stale = rows.iter().any(|l| match l {
                Lookup::Present(r) | Lookup::OutsideMaxAge(r) => r.values.len() != schema.len(),
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

    /// For each `(view, ttl)`: its fields and one lookup per id, read on a bounded set of
    /// blocking threads under `online_timeout` (past it, or with the store down: 503).
    pub async fn lookup(
        &self,
        views: Vec<(String, Option<u64>)>,
        ids: Vec<EntityId>,
    ) -> Result<Vec<ViewLookups>, ApiError> {
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
                let r = handle.read_views(&views, &ids, now_us);
                drop(slot);
                r
            })
            .await
            .map_err(|_| ApiError::Internal("online store lookup panicked".into()))?
            .map_err(|e| match e {
                StoreError::Unavailable(_) => ApiError::NotReady(e.to_string()),
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
        let views: Vec<(String, Option<u64>)> = spec
            .views
            .iter()
            .map(|v| (v.name.clone(), v.ttl_s))
            .collect();
        let found = self.lookup(views, entities.ids.clone()).await?;
        let width = schema.width();
        // As Feast: a view without a row for the entity, or whose row is older than its TTL,
        // gives nulls (NaN to the model, as the training join gives); only an entity with no
        // row in any view is unknown.
        if let Some(r) = (0..entities.ids.len()).find(|&r| {
            found
                .iter()
                .all(|(_, rows)| matches!(rows[r], Lookup::NotFound))
        }) {
            return Err(ApiError::NotFound(format!(
                "{} {} not found in any online view ({})",
                spec.entity_key,
                entities.ids[r],
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
                let field = fields.iter().position(|s| s.name == *f).ok_or_else(|| {
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

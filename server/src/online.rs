//! The server's handle on the online feature store: opened lazily (a store that is down at
//! startup does not stop the server), schemas cached per view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vane_online::{EntityId, Lookup, OnlineStore, StoreError, StoredField};

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

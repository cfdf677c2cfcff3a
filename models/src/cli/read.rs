//! `read`: the online store's rows for some entities, one JSON line each — what the server
//! would complete an entity-keyed request with (`POST /v1/features` answers the same over HTTP).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value as Json, json};
use vane_features::timeutil::format_rfc3339;
use vane_online::{KeyBuilder, KeyKind, Value, open_store};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  vane features read --store target/demo/online.redb --view applicant_profile --key applicant_id=1 --key applicant_id=2
  vane features read --store redis://redis:6379 --view credit_activity --key applicant_ref=B-9,bureau_id=10")]
pub struct Args {
    /// Online store: a file path (embedded redb) or redis://host:port[/db].
    #[arg(long, env = "VANE_ONLINE_STORE")]
    pub store: String,
    /// The feature view to read.
    #[arg(long)]
    pub view: String,
    /// One entity: `name=value[,name=value…]` naming every join key of the view (repeatable).
    #[arg(long = "key", required = true, value_name = "NAME=VALUE[,…]")]
    pub keys: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let store = open_store(&args.store).with_context(|| format!("opening {}", args.store))?;
    let schema = store.read_schema(&args.view)?.ok_or_else(|| {
        anyhow!(
            "view {:?} was never materialized into {}",
            args.view,
            store.describe()
        )
    })?;
    let kinds = schema.key_kinds();
    // A view stored before composite keys recorded no key name: its one INT64 key takes any.
    let names: Vec<&str> = schema.keys.iter().map(|k| k.name.as_str()).collect();
    let mut keys = Vec::with_capacity(args.keys.len());
    for spec in &args.keys {
        let mut given: BTreeMap<&str, &str> = BTreeMap::new();
        for pair in spec.split(',') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--key {spec:?}: expected name=value[,name=value…]"))?;
            given.insert(k.trim(), v.trim());
        }
        let mut b = KeyBuilder::new();
        if names.is_empty() {
            let [(_, v)] = given.into_iter().collect::<Vec<_>>()[..] else {
                bail!("--key {spec:?}: view {:?} has one integer key", args.view);
            };
            b.int(int(spec, v)?);
        } else {
            for (name, kind) in names.iter().zip(&kinds) {
                let v = given.remove(name).ok_or_else(|| {
                    anyhow!(
                        "--key {spec:?}: missing join key {name:?} of view {:?} (its keys: {})",
                        args.view,
                        names.join(", ")
                    )
                })?;
                match kind {
                    KeyKind::Int64 => b.int(int(spec, v)?),
                    KeyKind::String => b.str(v),
                };
            }
            if let Some(extra) = given.keys().next() {
                bail!(
                    "--key {spec:?}: {extra:?} is not a join key of view {:?} (its keys: {})",
                    args.view,
                    names.join(", ")
                );
            }
        }
        keys.push(b.finish());
    }
    let rows = store.read_batch(&args.view, &keys)?;
    for (spec, row) in args.keys.iter().zip(rows) {
        let line = match row {
            None => json!({ "key": spec, "status": "NOT_FOUND" }),
            Some(r) => {
                let features: Map<String, Json> = schema
                    .fields
                    .iter()
                    .zip(&r.values)
                    .map(|(f, v)| {
                        let v = match v {
                            Value::Null => Json::Null,
                            Value::Num(x) => json!(x),
                            Value::Str(s) => json!(s),
                        };
                        (f.name.clone(), v)
                    })
                    .collect();
                json!({
                    "key": spec,
                    "status": "PRESENT",
                    "event_timestamp": format_rfc3339(r.event_ts_us),
                    "features": features,
                })
            }
        };
        println!("{line}");
    }
    Ok(())
}

fn int(spec: &str, v: &str) -> Result<i64> {
    v.parse()
        .with_context(|| format!("--key {spec:?}: {v:?} is not an INT64 key value"))
}

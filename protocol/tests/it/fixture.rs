//! The schema the tests decode against: two numeric and two categorical features, two of
//! them readable from the online store by `applicant_id`.

use vane_protocol::Schema;
use vane_protocol::tensor::{DType, OutputMeta};
use vane_registry::{FeatureSpec, OnlineKey, OnlineSpec, OnlineView, Signature, TensorSpec};

pub const TERMS: [&str; 3] = ["36", "60", "a\"b"];
pub const REGIONS: [&str; 4] = ["n", "s", "e", "w"];
pub const ENTITY: &str = "applicant_id";

pub fn schema(allow_missing: bool, max_request_rows: usize) -> Schema {
    schema_with(
        OnlineSpec {
            keys: vec![OnlineKey::new(ENTITY, "INT64")],
            views: vec![OnlineView {
                name: "bureau".into(),
                keys: vec![],
                ttl_s: None,
                features: vec!["income".into(), "region".into()],
            }],
        },
        allow_missing,
        max_request_rows,
    )
}

/// Views of two entities: `income` by `applicant_id` (INT64), `region` by the composite key
/// (`applicant_id`, `merchant`: STRING).
pub fn composite_schema() -> Schema {
    schema_with(
        OnlineSpec {
            keys: vec![
                OnlineKey::new(ENTITY, "INT64"),
                OnlineKey::new("merchant", "STRING"),
            ],
            views: vec![
                OnlineView {
                    name: "bureau".into(),
                    keys: vec![ENTITY.into()],
                    ttl_s: None,
                    features: vec!["income".into()],
                },
                OnlineView {
                    name: "pair".into(),
                    keys: vec![ENTITY.into(), "merchant".into()],
                    ttl_s: None,
                    features: vec!["region".into()],
                },
            ],
        },
        false,
        10,
    )
}

fn schema_with(online: OnlineSpec, allow_missing: bool, max_request_rows: usize) -> Schema {
    let signature = Signature {
        inputs: vec![
            FeatureSpec::numeric("income", "FP32"),
            FeatureSpec::numeric("owner", "FP32"),
            FeatureSpec::categorical("term", TERMS),
            FeatureSpec::categorical("region", REGIONS),
        ],
        tensor: Some(TensorSpec {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 4],
        }),
        outputs: vec![],
        graph: None,
        online: Some(online),
    };
    let outputs = vec![
        OutputMeta {
            name: "probability".into(),
            dtype: DType::F32,
            row_shape: vec![1],
        },
        OutputMeta {
            name: "p\"q".into(),
            dtype: DType::F32,
            row_shape: vec![2],
        },
    ];
    Schema::new("m", 3, signature, outputs, max_request_rows, allow_missing).unwrap()
}

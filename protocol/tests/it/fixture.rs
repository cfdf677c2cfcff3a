//! The schema the tests decode against: two numeric and two categorical features, two of
//! them readable from the online store by `applicant_id`.

use vane_protocol::Schema;
use vane_protocol::tensor::{DType, OutputMeta};
use vane_registry::{FeatureSpec, OnlineSpec, OnlineView, Signature, TensorSpec};

pub const TERMS: [&str; 3] = ["36", "60", "a\"b"];
pub const REGIONS: [&str; 4] = ["n", "s", "e", "w"];
pub const ENTITY: &str = "applicant_id";

pub fn schema(allow_missing: bool, max_request_rows: usize) -> Schema {
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
        online: Some(OnlineSpec {
            entity_key: ENTITY.into(),
            views: vec![OnlineView {
                name: "bureau".into(),
                ttl_s: None,
                features: vec!["income".into(), "region".into()],
            }],
        }),
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

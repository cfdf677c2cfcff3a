//! Tensors as requests carry them to the backends and as the backends return them.

/// Element type of a tensor: the Open Inference Protocol datatypes Vane carries (`FP16` and
/// `BF16` have no Rust element type here and are refused when a model is loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    /// `BYTES`: UTF-8 strings (ONNX `string` tensors).
    Str,
}

impl DType {
    /// The Open Inference Protocol datatype name.
    pub fn oip_name(self) -> &'static str {
        match self {
            DType::F32 => "FP32",
            DType::F64 => "FP64",
            DType::I8 => "INT8",
            DType::I16 => "INT16",
            DType::I32 => "INT32",
            DType::I64 => "INT64",
            DType::U8 => "UINT8",
            DType::U16 => "UINT16",
            DType::U32 => "UINT32",
            DType::U64 => "UINT64",
            DType::Bool => "BOOL",
            DType::Str => "BYTES",
        }
    }

    /// The element type of an Open Inference Protocol datatype name, when Vane carries it.
    pub fn from_oip(name: &str) -> Option<DType> {
        Some(match name {
            "FP32" => DType::F32,
            "FP64" => DType::F64,
            "INT8" => DType::I8,
            "INT16" => DType::I16,
            "INT32" => DType::I32,
            "INT64" => DType::I64,
            "UINT8" => DType::U8,
            "UINT16" => DType::U16,
            "UINT32" => DType::U32,
            "UINT64" => DType::U64,
            "BOOL" => DType::Bool,
            "BYTES" => DType::Str,
            _ => return None,
        })
    }
}

/// Row-major tensor data.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

/// Applies `$body` to the vector inside any [`TensorData`], binding it as `$v`.
#[macro_export]
#[doc(hidden)]
macro_rules! each_tensor {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::TensorData::F32($v) => $body,
            $crate::tensor::TensorData::F64($v) => $body,
            $crate::tensor::TensorData::I8($v) => $body,
            $crate::tensor::TensorData::I16($v) => $body,
            $crate::tensor::TensorData::I32($v) => $body,
            $crate::tensor::TensorData::I64($v) => $body,
            $crate::tensor::TensorData::U8($v) => $body,
            $crate::tensor::TensorData::U16($v) => $body,
            $crate::tensor::TensorData::U32($v) => $body,
            $crate::tensor::TensorData::U64($v) => $body,
            $crate::tensor::TensorData::Bool($v) => $body,
            $crate::tensor::TensorData::Str($v) => $body,
        }
    };
}

/// Builds a tensor of the same variant from `$body`, an expression over the vector `$v`.
macro_rules! map_tensor {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::F32($v) => TensorData::F32($body),
            TensorData::F64($v) => TensorData::F64($body),
            TensorData::I8($v) => TensorData::I8($body),
            TensorData::I16($v) => TensorData::I16($body),
            TensorData::I32($v) => TensorData::I32($body),
            TensorData::I64($v) => TensorData::I64($body),
            TensorData::U8($v) => TensorData::U8($body),
            TensorData::U16($v) => TensorData::U16($body),
            TensorData::U32($v) => TensorData::U32($body),
            TensorData::U64($v) => TensorData::U64($body),
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::Str($v) => TensorData::Str($body),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::Str(_) => DType::Str,
        }
    }

    /// An empty tensor of `dtype` with room for `n` elements.
    pub fn with_capacity(dtype: DType, n: usize) -> TensorData {
        match dtype {
            DType::F32 => TensorData::F32(Vec::with_capacity(n)),
            DType::F64 => TensorData::F64(Vec::with_capacity(n)),
            DType::I8 => TensorData::I8(Vec::with_capacity(n)),
            DType::I16 => TensorData::I16(Vec::with_capacity(n)),
            DType::I32 => TensorData::I32(Vec::with_capacity(n)),
            DType::I64 => TensorData::I64(Vec::with_capacity(n)),
            DType::U8 => TensorData::U8(Vec::with_capacity(n)),
            DType::U16 => TensorData::U16(Vec::with_capacity(n)),
            DType::U32 => TensorData::U32(Vec::with_capacity(n)),
            DType::U64 => TensorData::U64(Vec::with_capacity(n)),
            DType::Bool => TensorData::Bool(Vec::with_capacity(n)),
            DType::Str => TensorData::Str(Vec::with_capacity(n)),
        }
    }

    /// `n` default elements of `dtype` (zeros, `false`, empty strings): a stand-in input.
    pub fn zeros(dtype: DType, n: usize) -> TensorData {
        let mut data = TensorData::with_capacity(dtype, n);
        each_tensor!(&mut data, v => v.resize(n, Default::default()));
        data
    }

    pub fn len(&self) -> usize {
        each_tensor!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, when the tensor is FP32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Elements `[start, end)` as a new tensor.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        map_tensor!(self, v => v[start..end].to_vec())
    }

    /// Appends `other`'s elements; false (and nothing appended) when the types differ.
    pub fn extend_from(&mut self, other: &TensorData) -> bool {
        macro_rules! ext {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => a.extend_from_slice(b),)*
                    _ => return false,
                }
            };
        }
        ext!(F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, Bool, Str);
        true
    }
}

/// A request's (or a batch's) value for one graph input.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub data: TensorData,
    pub shape: Vec<usize>,
}

/// Name, type and per-row shape (dims after the batch dim) of a model output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputMeta {
    pub name: String,
    pub dtype: DType,
    pub row_shape: Vec<usize>,
}

impl OutputMeta {
    /// Elements per row.
    pub fn row_len(&self) -> usize {
        self.row_shape.iter().product()
    }
}

/// One output of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub data: TensorData,
    /// The shape the runtime returned, for tensor-signature models (whose declared shapes may
    /// be symbolic or wrong). `None` for feature models: `rows × meta.row_shape`.
    pub shape: Option<Vec<usize>>,
}

impl Output {
    /// An output of a feature model, shaped by its [`OutputMeta`].
    pub fn rows(data: TensorData) -> Self {
        Self { data, shape: None }
    }
}

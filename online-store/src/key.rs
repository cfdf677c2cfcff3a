//! Entity keys: the values of a view's join keys, one or several, INT64 or STRING, encoded
//! once into the bytes both stores use as the row key.
//!
//! **Key format 2** (the current one):
//!
//! ```text
//! byte 0      key format version (2)
//! per part    tag byte, then
//!               1 INT64: 8 bytes big-endian with the sign bit flipped
//!               2 STRING: varint byte length, UTF-8 bytes
//! ```
//!
//! Both stores keep a key that is a single INT64 as they did before composite keys (key
//! format 1: a redb `i64` table key, a decimal Redis key suffix), so existing stores read as
//! they are and the common lookup stays on a fixed-width key; every other key is stored as
//! these bytes. A view's schema (format 2) records its keys' names and kinds; a format-1
//! schema is read as one unnamed INT64 key.

use std::fmt;

use crate::StoreError;
use crate::codec::{Reader, put_varint};

/// Version byte that starts every encoded key.
pub const KEY_FORMAT: u8 = 2;
const TAG_INT: u8 = 1;
const TAG_STR: u8 = 2;

/// The type of one join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int64,
    String,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Int64 => "INT64",
            KeyKind::String => "STRING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "INT64" => Some(KeyKind::Int64),
            "STRING" => Some(KeyKind::String),
            _ => None,
        }
    }
}

/// One join key's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    Int(i64),
    Str(String),
}

impl KeyValue {
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyValue::Int(_) => KeyKind::Int64,
            KeyValue::Str(_) => KeyKind::String,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(i) => write!(f, "{i}"),
            KeyValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// An encoded entity key (key format 2): cheap to hash, compare and store. Keys up to
/// [`INLINE`] bytes (any single INT64, short strings) need no allocation.
#[derive(Clone)]
pub struct EntityKey(Repr);

/// Longest key kept inline.
pub const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl EntityKey {
    fn from_slice(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            EntityKey(Repr::Inline {
                len: b.len() as u8,
                bytes,
            })
        } else {
            EntityKey(Repr::Heap(b.into()))
        }
    }
}

impl PartialEq for EntityKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EntityKey {}

impl std::hash::Hash for EntityKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for EntityKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntityKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// Builds a key part by part without intermediate values.
#[derive(Debug, Default)]
pub struct KeyBuilder(Vec<u8>);

impl KeyBuilder {
    pub fn new() -> Self {
        let mut b = Vec::with_capacity(16);
        b.push(KEY_FORMAT);
        KeyBuilder(b)
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        self.0.push(TAG_INT);
        self.0.extend_from_slice(&crate::codec::ordered_ts(v));
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(TAG_STR);
        put_varint(&mut self.0, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub fn value(&mut self, v: &KeyValue) -> &mut Self {
        match v {
            KeyValue::Int(i) => self.int(*i),
            KeyValue::Str(s) => self.str(s),
        }
    }

    /// The key, leaving the builder empty for the next one.
    pub fn finish(&mut self) -> EntityKey {
        let key = EntityKey::from_slice(&self.0);
        self.0.truncate(1);
        key
    }
}

impl EntityKey {
    /// The key of an entity with one INT64 join key.
    pub fn int(v: i64) -> Self {
        KeyBuilder::new().int(v).finish()
    }

    /// The key of an entity with one STRING join key.
    pub fn str(s: &str) -> Self {
        KeyBuilder::new().str(s).finish()
    }

    /// The key of these join-key values, in the view's key order.
    pub fn new(parts: &[KeyValue]) -> Self {
        let mut b = KeyBuilder::new();
        for p in parts {
            b.value(p);
        }
        b.finish()
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// A stored key, checked.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let key = EntityKey::from_slice(bytes);
        key.parts()?;
        Ok(key)
    }

    /// The value when the key is a single INT64 (what key format 1 stored).
    pub fn single_int(&self) -> Option<i64> {
        match self.as_bytes() {
            [KEY_FORMAT, TAG_INT, rest @ ..] if rest.len() == 8 => {
                Some(crate::codec::ts_from_ordered(rest.try_into().ok()?))
            }
            _ => None,
        }
    }

    /// The join-key values.
    pub fn parts(&self) -> Result<Vec<KeyValue>, StoreError> {
        let corrupt = |w: &str| StoreError::Corrupt(format!("entity key: {w}"));
        let bytes = self.as_bytes();
        if bytes.first() != Some(&KEY_FORMAT) {
            return Err(corrupt(&format!("unknown key format {:?}", bytes.first())));
        }
        let mut r = Reader::new(bytes, 1);
        let mut out = Vec::with_capacity(1);
        while !r.done() {
            out.push(match r.byte()? {
                TAG_INT => {
                    let b: [u8; 8] = r.take(8)?.try_into().expect("8 bytes");
                    KeyValue::Int(crate::codec::ts_from_ordered(b))
                }
                TAG_STR => {
                    let len = usize::try_from(r.varint()?).map_err(|_| corrupt("too long"))?;
                    let s = std::str::from_utf8(r.take(len)?).map_err(|_| corrupt("not UTF-8"))?;
                    KeyValue::Str(s.to_owned())
                }
                t => return Err(corrupt(&format!("unknown tag {t}"))),
            });
        }
        Ok(out)
    }

    /// Checks the key's parts against the view's key kinds.
    pub fn check(&self, kinds: &[KeyKind]) -> Result<(), String> {
        let parts = self.parts().map_err(|e| e.to_string())?;
        let got: Vec<KeyKind> = parts.iter().map(KeyValue::kind).collect();
        if got != kinds {
            let names = |k: &[KeyKind]| k.iter().map(|k| k.as_str()).collect::<Vec<_>>();
            return Err(format!(
                "entity key {self} has parts {:?}; the view's keys are {:?}",
                names(&got),
                names(kinds)
            ));
        }
        Ok(())
    }
}

impl From<i64> for EntityKey {
    fn from(v: i64) -> Self {
        EntityKey::int(v)
    }
}

impl From<&str> for EntityKey {
    fn from(s: &str) -> Self {
        EntityKey::str(s)
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            Ok(parts) if parts.len() == 1 => write!(f, "{}", parts[0]),
            Ok(parts) => {
                f.write_str("(")?;
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{p}")?;
                }
                f.write_str(")")
            }
            Err(_) => write!(f, "<key {:02x?}>", self.as_bytes()),
        }
    }
}

impl fmt::Debug for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part() -> impl Strategy<Value = KeyValue> {
        prop_oneof![
            any::<i64>().prop_map(KeyValue::Int),
            ".{0,12}".prop_map(KeyValue::Str),
        ]
    }

    proptest! {
        #[test]
        fn keys_round_trip(parts in proptest::collection::vec(part(), 1..4)) {
            let k = EntityKey::new(&parts);
            prop_assert_eq!(k.parts().unwrap(), parts.clone());
            prop_assert_eq!(EntityKey::from_bytes(k.as_bytes()).unwrap(), k.clone());
            let single = match parts.as_slice() {
                [KeyValue::Int(i)] => Some(*i),
                _ => None,
            };
            prop_assert_eq!(k.single_int(), single);
        }

        #[test]
        fn distinct_parts_give_distinct_keys(a in proptest::collection::vec(part(), 1..3),
                                             b in proptest::collection::vec(part(), 1..3)) {
            prop_assert_eq!(a == b, EntityKey::new(&a) == EntityKey::new(&b));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = EntityKey::from_bytes(&bytes);
        }
    }

    #[test]
    fn inline_and_heap_keys_compare_by_bytes() {
        let long = "x".repeat(40);
        let a = EntityKey::str(&long);
        assert!(matches!(a.0, Repr::Heap(_)));
        assert!(matches!(EntityKey::int(-1).0, Repr::Inline { .. }));
        assert_eq!(a, EntityKey::from_bytes(a.as_bytes()).unwrap());
        assert_eq!(a.parts().unwrap(), vec![KeyValue::Str(long)]);
        assert!(EntityKey::str("a") < EntityKey::str("b"));
        assert_eq!(std::mem::size_of::<EntityKey>(), 24);
    }

    #[test]
    fn layout_is_pinned() {
        // Stored keys outlive builds: the bytes are part of the format.
        assert_eq!(
            EntityKey::int(1).as_bytes(),
            &[2, 1, 0x80, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(EntityKey::str("ab").as_bytes(), &[2, 2, 2, b'a', b'b']);
        let k = EntityKey::new(&[KeyValue::Int(7), KeyValue::Str("x".into())]);
        assert_eq!(k.to_string(), "(7, \"x\")");
        assert_eq!(EntityKey::int(-3).to_string(), "-3");
        assert!(k.check(&[KeyKind::Int64, KeyKind::String]).is_ok());
        let e = k.check(&[KeyKind::Int64]).unwrap_err();
        assert!(e.contains("[\"INT64\", \"STRING\"]"), "{e}");
    }
}

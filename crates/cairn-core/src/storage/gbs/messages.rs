//! The CBOR bodies of every endpoint, both directions.

use super::*;

/// `POST /storage/v1/immutable/:si`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateRequest {
    pub share_numbers: BTreeSet<ShareNum>,
    pub allocated_size: u64,
}

/// `POST .../:shnum/corrupt`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRequest {
    pub reason: String,
}

// The read-test-write request is the same value the test-and-write semantics take.
pub use crate::storage::rtw::{ReadVector, RtwRequest, TestVector, TestWriteVectors, WriteVector};

impl AllocateRequest {
    /// Parse and validate (`allocate_buckets` schema; share numbers ≤ 255).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let mut m = Fields::new(v, "request")?;
        let shares = m.take("share-numbers")?;
        let size = m.take("allocated-size")?;
        m.finish()?;
        let items = expect_set(shares, "share-numbers")?;
        if items.len() > MAX_ALLOCATE_SHARES {
            return Err(bad("share-numbers: at most 256 share numbers"));
        }
        let mut share_numbers = BTreeSet::new();
        for it in items {
            share_numbers.insert(expect_shnum(it, "share-numbers")?);
        }
        Ok(AllocateRequest {
            share_numbers,
            allocated_size: expect_uint(size, "allocated-size")?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![
            (
                V::text("share-numbers"),
                set_value(self.share_numbers.iter().map(|&s| u64::from(s))),
            ),
            (V::text("allocated-size"), V::Uint(self.allocated_size)),
        ]))
    }
}

impl CorruptRequest {
    /// Parse and validate (`advise_corrupt_share` schema: `reason` text of 1..32765 bytes).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let mut m = Fields::new(v, "request")?;
        let reason = m.take("reason")?;
        m.finish()?;
        let reason = match reason {
            cbor::Value::Text(t) => t,
            _ => return Err(bad("reason: expected text")),
        };
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(bad("reason: must be 1..32765 bytes"));
        }
        Ok(CorruptRequest { reason })
    }

    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![(
            V::text("reason"),
            V::Text(self.reason.clone()),
        )]))
    }
}

impl RtwRequest {
    /// Parse and validate (`mutable_read_test_write` schema; share numbers ≤ 255).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let mut m = Fields::new(v, "request")?;
        let twv = m.take("test-write-vectors")?;
        let rv = m.take("read-vector")?;
        m.finish()?;
        let twv = match twv {
            cbor::Value::Map(entries) => entries,
            _ => return Err(bad("test-write-vectors: expected a map")),
        };
        if twv.len() > MAX_RTW_SHARES {
            return Err(bad("test-write-vectors: at most 256 shares"));
        }
        let mut test_write_vectors = BTreeMap::new();
        for (k, v) in twv {
            let shnum = expect_shnum(k, "test-write-vectors key")?;
            let mut f = Fields::new(v, "test-write-vectors entry")?;
            let test = f.take("test")?;
            let write = f.take("write")?;
            let new_length = f.take("new-length")?;
            f.finish()?;
            let test = expect_array(test, "test")?;
            if test.len() > MAX_TEST_VECTORS {
                return Err(bad("test: at most 30 test vectors"));
            }
            let mut tests = Vec::with_capacity(test.len());
            for t in test {
                let mut f = Fields::new(t, "test vector")?;
                let offset = expect_uint(f.take("offset")?, "offset")?;
                let size = expect_uint(f.take("size")?, "size")?;
                let specimen = expect_bytes(f.take("specimen")?, "specimen")?;
                f.finish()?;
                tests.push(TestVector {
                    offset,
                    size,
                    specimen,
                });
            }
            let write = expect_array(write, "write")?;
            let mut writes = Vec::with_capacity(write.len());
            for w in write {
                let mut f = Fields::new(w, "write vector")?;
                let offset = expect_uint(f.take("offset")?, "offset")?;
                let data = expect_bytes(f.take("data")?, "data")?;
                f.finish()?;
                if offset.checked_add(data.len() as u64).is_none() {
                    return Err(bad("write: offset + length overflows"));
                }
                writes.push(WriteVector { offset, data });
            }
            let new_length = match new_length {
                cbor::Value::Null => None,
                other => Some(expect_uint(other, "new-length")?),
            };
            if test_write_vectors
                .insert(
                    shnum,
                    TestWriteVectors {
                        test: tests,
                        write: writes,
                        new_length,
                    },
                )
                .is_some()
            {
                return Err(bad("test-write-vectors: duplicate share number"));
            }
        }
        let rv = expect_array(rv, "read-vector")?;
        if rv.len() > MAX_READ_VECTORS {
            return Err(bad("read-vector: at most 30 read vectors"));
        }
        let mut read_vector = Vec::with_capacity(rv.len());
        for r in rv {
            let mut f = Fields::new(r, "read vector")?;
            let offset = expect_uint(f.take("offset")?, "offset")?;
            let size = expect_uint(f.take("size")?, "size")?;
            f.finish()?;
            read_vector.push(ReadVector { offset, size });
        }
        Ok(RtwRequest {
            test_write_vectors,
            read_vector,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        let twv = self
            .test_write_vectors
            .iter()
            .map(|(&k, v)| {
                let test = v
                    .test
                    .iter()
                    .map(|t| {
                        V::Map(vec![
                            (V::text("offset"), V::Uint(t.offset)),
                            (V::text("size"), V::Uint(t.size)),
                            (V::text("specimen"), V::Bytes(t.specimen.clone())),
                        ])
                    })
                    .collect();
                let write = v
                    .write
                    .iter()
                    .map(|w| {
                        V::Map(vec![
                            (V::text("offset"), V::Uint(w.offset)),
                            (V::text("data"), V::Bytes(w.data.clone())),
                        ])
                    })
                    .collect();
                let nl = v.new_length.map(V::Uint).unwrap_or(V::Null);
                (
                    V::Uint(u64::from(k)),
                    V::Map(vec![
                        (V::text("test"), V::Array(test)),
                        (V::text("write"), V::Array(write)),
                        (V::text("new-length"), nl),
                    ]),
                )
            })
            .collect();
        let rv = self
            .read_vector
            .iter()
            .map(|r| {
                V::Map(vec![
                    (V::text("offset"), V::Uint(r.offset)),
                    (V::text("size"), V::Uint(r.size)),
                ])
            })
            .collect();
        cbor::encode(&V::Map(vec![
            (V::text("test-write-vectors"), V::Map(twv)),
            (V::text("read-vector"), V::Array(rv)),
        ]))
    }
}

// ------------------------------------------------------------------------------------------
// Response bodies

/// `GET /storage/v1/version` (keys are CBOR byte strings, as Tahoe sends them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionResponse {
    pub maximum_immutable_share_size: u64,
    pub maximum_mutable_share_size: u64,
    pub available_space: u64,
    pub application_version: Vec<u8>,
}

impl VersionResponse {
    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![
            (
                V::Bytes(V1_IDENTIFIER.to_vec()),
                V::Map(vec![
                    (
                        V::bytes(b"maximum-immutable-share-size"),
                        V::Uint(self.maximum_immutable_share_size),
                    ),
                    (
                        V::bytes(b"maximum-mutable-share-size"),
                        V::Uint(self.maximum_mutable_share_size),
                    ),
                    (V::bytes(b"available-space"), V::Uint(self.available_space)),
                ]),
            ),
            (
                V::bytes(b"application-version"),
                V::Bytes(self.application_version.clone()),
            ),
        ]))
    }

    /// Parse a server's answer (extra keys ignored, as Tahoe's client does).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let cbor::Value::Map(entries) = v else {
            return Err(bad("version: expected a map"));
        };
        let mut inner = None;
        let mut app = None;
        for (k, v) in entries {
            match k {
                cbor::Value::Bytes(b) if b == V1_IDENTIFIER => inner = Some(v),
                cbor::Value::Bytes(b) if b == b"application-version" => app = Some(v),
                _ => {}
            }
        }
        let cbor::Value::Map(inner) = inner.ok_or_else(|| bad("version: no v1 entry"))? else {
            return Err(bad("version: v1 entry not a map"));
        };
        let get = |key: &[u8]| -> Result<u64, GbsError> {
            for (k, v) in &inner {
                if matches!(k, cbor::Value::Bytes(b) if b == key) {
                    return expect_uint(v.clone(), "version field");
                }
            }
            Err(bad(format!(
                "version: missing {}",
                String::from_utf8_lossy(key)
            )))
        };
        Ok(VersionResponse {
            maximum_immutable_share_size: get(b"maximum-immutable-share-size")?,
            maximum_mutable_share_size: get(b"maximum-mutable-share-size")?,
            available_space: get(b"available-space")?,
            application_version: match app {
                Some(cbor::Value::Bytes(b)) => b,
                _ => Vec::new(),
            },
        })
    }
}

/// Answer to an allocate request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocateResponse {
    pub already_have: BTreeSet<ShareNum>,
    pub allocated: BTreeSet<ShareNum>,
}

impl AllocateResponse {
    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![
            (
                V::text("already-have"),
                set_value(self.already_have.iter().map(|&s| u64::from(s))),
            ),
            (
                V::text("allocated"),
                set_value(self.allocated.iter().map(|&s| u64::from(s))),
            ),
        ]))
    }

    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let mut m = Fields::new(cbor::decode(body)?, "allocate response")?;
        let ah = m.take("already-have")?;
        let al = m.take("allocated")?;
        let mut out = AllocateResponse::default();
        for it in expect_set(ah, "already-have")? {
            out.already_have.insert(expect_shnum(it, "already-have")?);
        }
        for it in expect_set(al, "allocated")? {
            out.allocated.insert(expect_shnum(it, "allocated")?);
        }
        Ok(out)
    }
}

/// Encode a set of share numbers (list-shares answers).
pub fn encode_share_set(shares: &BTreeSet<ShareNum>) -> Vec<u8> {
    cbor::encode(&set_value(shares.iter().map(|&s| u64::from(s))))
}

/// Parse a set of share numbers (tag 258 optional on the client side).
pub fn parse_share_set(body: &[u8]) -> Result<BTreeSet<ShareNum>, GbsError> {
    let v = cbor::decode(body)?;
    let items = match v {
        cbor::Value::Tag(TAG_SET, inner) => expect_array(*inner, "share set")?,
        other => expect_array(other, "share set")?,
    };
    items
        .into_iter()
        .map(|i| expect_shnum(i, "share set"))
        .collect()
}

/// Answer to a PATCH: the ranges still missing, `{"required": [{"begin", "end"}...]}`.
pub fn encode_required_ranges(required: &[ByteRange]) -> Vec<u8> {
    use cbor::Value as V;
    let list = required
        .iter()
        .map(|r| {
            V::Map(vec![
                (V::text("begin"), V::Uint(r.start)),
                (V::text("end"), V::Uint(r.end)),
            ])
        })
        .collect();
    cbor::encode(&V::Map(vec![(V::text("required"), V::Array(list))]))
}

pub fn parse_required_ranges(body: &[u8]) -> Result<Vec<ByteRange>, GbsError> {
    let mut m = Fields::new(cbor::decode(body)?, "patch response")?;
    let list = expect_array(m.take("required")?, "required")?;
    let mut out = Vec::with_capacity(list.len());
    for it in list {
        let mut f = Fields::new(it, "required range")?;
        let start = expect_uint(f.take("begin")?, "begin")?;
        let end = expect_uint(f.take("end")?, "end")?;
        if end < start {
            return Err(bad("required: end before begin"));
        }
        out.push(ByteRange { start, end });
    }
    Ok(out)
}

/// Answer to a read-test-write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtwResponse {
    pub success: bool,
    pub data: BTreeMap<ShareNum, Vec<Vec<u8>>>,
}

impl RtwResponse {
    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        let data = self
            .data
            .iter()
            .map(|(&k, v)| {
                (
                    V::Uint(u64::from(k)),
                    V::Array(v.iter().map(|b| V::Bytes(b.clone())).collect()),
                )
            })
            .collect();
        cbor::encode(&V::Map(vec![
            (V::text("success"), V::Bool(self.success)),
            (V::text("data"), V::Map(data)),
        ]))
    }

    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let mut m = Fields::new(cbor::decode(body)?, "rtw response")?;
        let success = match m.take("success")? {
            cbor::Value::Bool(b) => b,
            _ => return Err(bad("success: expected bool")),
        };
        let cbor::Value::Map(entries) = m.take("data")? else {
            return Err(bad("data: expected map"));
        };
        let mut data = BTreeMap::new();
        for (k, v) in entries {
            let shnum = expect_shnum(k, "data key")?;
            let reads = expect_array(v, "data")?
                .into_iter()
                .map(|b| expect_bytes(b, "data"))
                .collect::<Result<Vec<_>, _>>()?;
            data.insert(shnum, reads);
        }
        Ok(RtwResponse { success, data })
    }
}

// ------------------------------------------------------------------------------------------
// Helpers on decoded values

struct Fields {
    entries: Vec<(cbor::Value, cbor::Value)>,
    what: &'static str,
}

impl Fields {
    fn new(v: cbor::Value, what: &'static str) -> Result<Self, GbsError> {
        match v {
            cbor::Value::Map(entries) => {
                for (i, (k, _)) in entries.iter().enumerate() {
                    if entries[..i].iter().any(|(k2, _)| k2 == k) {
                        return Err(bad(format!("{what}: duplicate key")));
                    }
                }
                Ok(Fields { entries, what })
            }
            _ => Err(bad(format!("{what}: expected a map"))),
        }
    }

    fn take(&mut self, key: &str) -> Result<cbor::Value, GbsError> {
        let pos = self
            .entries
            .iter()
            .position(|(k, _)| matches!(k, cbor::Value::Text(t) if t == key))
            .ok_or_else(|| bad(format!("{}: missing key {key:?}", self.what)))?;
        Ok(self.entries.swap_remove(pos).1)
    }

    /// CDDL maps are closed: unknown keys are a validation failure.
    fn finish(self) -> Result<(), GbsError> {
        if let Some((k, _)) = self.entries.first() {
            return Err(bad(format!("{}: unexpected key {k:?}", self.what)));
        }
        Ok(())
    }
}

fn expect_uint(v: cbor::Value, what: &str) -> Result<u64, GbsError> {
    match v {
        cbor::Value::Uint(n) => Ok(n),
        _ => Err(bad(format!("{what}: expected an unsigned integer"))),
    }
}

fn expect_shnum(v: cbor::Value, what: &str) -> Result<ShareNum, GbsError> {
    let n = expect_uint(v, what)?;
    ShareNum::try_from(n).map_err(|_| bad(format!("{what}: share number {n} out of range 0..=255")))
}

fn expect_bytes(v: cbor::Value, what: &str) -> Result<Vec<u8>, GbsError> {
    match v {
        cbor::Value::Bytes(b) => Ok(b),
        _ => Err(bad(format!("{what}: expected a byte string"))),
    }
}

fn expect_array(v: cbor::Value, what: &str) -> Result<Vec<cbor::Value>, GbsError> {
    match v {
        cbor::Value::Array(a) => Ok(a),
        _ => Err(bad(format!("{what}: expected an array"))),
    }
}

/// A set: tag 258 around an array (required, as Tahoe's CDDL requires it).
fn expect_set(v: cbor::Value, what: &str) -> Result<Vec<cbor::Value>, GbsError> {
    match v {
        cbor::Value::Tag(TAG_SET, inner) => expect_array(*inner, what),
        _ => Err(bad(format!("{what}: expected a set (CBOR tag 258 array)"))),
    }
}

pub(super) fn set_value(items: impl Iterator<Item = u64>) -> cbor::Value {
    cbor::Value::Tag(
        TAG_SET,
        Box::new(cbor::Value::Array(items.map(cbor::Value::Uint).collect())),
    )
}

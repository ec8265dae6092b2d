//! A directory's body, byte-compatible with Tahoe 1.20 (`dirnode.py`:
//! `_pack_normalized_children`, `_unpack_contents`, `_encrypt_rw_uri`,
//! `_decrypt_rwcapdata`; `unknown.py`: `strip_prefix_for_ro`). The layout is in
//! `docs/formats/directory.md`.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;

use super::pyjson::{self, JsonError, Object, Value};
use crate::crypto::aes_ctr;
use crate::hashutil::{mutable_rwcap_key_hash, mutable_rwcap_salt_hash, tahoe_hmac};
use crate::netstring::{self, NetstringError};

/// Tahoe's prefix for a cap of unknown kind that its writer said was read-only.
pub const ALLEGED_READONLY_PREFIX: &[u8] = b"ro.";
/// Tahoe's prefix for a cap of unknown kind that its writer said was immutable.
pub const ALLEGED_IMMUTABLE_PREFIX: &[u8] = b"imm.";

/// Salt (16) and MAC (32) around an encrypted write cap.
const RWCAP_OVERHEAD: usize = 16 + 32;

/// Why a directory body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    #[error("directory body: entry at byte {at}: {source}")]
    Entry { at: usize, source: NetstringError },
    #[error("directory body: entry at byte {at}: a child name that is not UTF-8")]
    Name { at: usize },
    #[error("directory body: child {name:?}: metadata: {source}")]
    Metadata { name: String, source: JsonError },
    #[error("directory body: child {name:?}: metadata is not a JSON object")]
    MetadataNotObject { name: String },
    #[error("directory body: child {name:?} of an immutable directory has a write cap")]
    WriteCapInImmutable { name: String },
}

/// How the body is read: what the reader holds decides what it can see.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// An immutable directory: no child may carry a write cap.
    Immutable,
    /// A mutable directory read through its read cap: write caps stay sealed.
    ReadOnly,
    /// A mutable directory's writer, with its write key: write caps are decrypted.
    Writer(&'a [u8; 16]),
}

/// One child: its name, caps and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    name: String,
    /// The read-only cap as stored, trailing spaces stripped (empty: none).
    pub ro_uri: Vec<u8>,
    /// The write cap, trailing spaces stripped (empty: none, or not visible to this
    /// reader).
    pub rw_uri: Vec<u8>,
    pub metadata: Object,
    /// The entry's bytes as read and the context they were written in: written back as
    /// they are while the entry is unchanged (Tahoe's "aux" values), so a change to one
    /// child re-encrypts nothing else.
    packed: Option<Packed>,
}

#[derive(Clone, Debug, PartialEq)]
struct Packed {
    bytes: Vec<u8>,
    /// The write key that sealed its write cap (`None`: none sealed) and whether it was
    /// packed for a deeply immutable directory: reused only in the same context.
    writekey: Option<[u8; 16]>,
    deep_immutable: bool,
}

impl Entry {
    /// A new child; `name` is NFC-normalized, as Tahoe stores names.
    pub fn new(name: &str, ro_uri: &[u8], rw_uri: &[u8], metadata: Object) -> Entry {
        Entry {
            name: name.nfc().collect(),
            ro_uri: ro_uri.to_vec(),
            rw_uri: rw_uri.to_vec(),
            metadata,
            packed: None,
        }
    }

    /// The name, NFC-normalized.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metadata, to change it (the entry will be packed afresh).
    pub fn metadata_mut(&mut self) -> &mut Object {
        self.packed = None;
        &mut self.metadata
    }

    /// Replace the caps (the entry will be packed afresh).
    pub fn set_caps(&mut self, ro_uri: &[u8], rw_uri: &[u8]) {
        self.packed = None;
        self.ro_uri = ro_uri.to_vec();
        self.rw_uri = rw_uri.to_vec();
    }

    /// Whether this entry will be written as it was read.
    pub fn is_unchanged(&self) -> bool {
        self.packed.is_some()
    }

    fn pack(&self, writekey: Option<&[u8; 16]>, deep_immutable: bool) -> Vec<u8> {
        if let Some(p) = &self.packed {
            if p.writekey.as_ref() == writekey && p.deep_immutable == deep_immutable {
                return p.bytes.clone();
            }
        }
        let mut e = Vec::new();
        netstring::write(&mut e, self.name.as_bytes());
        netstring::write(&mut e, strip_prefix_for_ro(&self.ro_uri, deep_immutable));
        match writekey {
            Some(k) => netstring::write(&mut e, &encrypt_rw_uri(k, &self.rw_uri)),
            None => netstring::write(&mut e, b""),
        }
        netstring::write(
            &mut e,
            pyjson::dumps(&Value::Object(self.metadata.clone())).as_bytes(),
        );
        e
    }
}

/// A directory's children by name (sorted as Tahoe writes them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DirBody {
    entries: BTreeMap<String, Entry>,
}

impl DirBody {
    pub fn new() -> DirBody {
        DirBody::default()
    }

    /// Read a body as `_unpack_contents` does: a netstring per child, each four
    /// netstrings (name, read-only cap, sealed write cap, metadata JSON). Names are
    /// NFC-normalized; of two that normalize alike, the later wins, as in Tahoe.
    pub fn parse(data: &[u8], access: Access<'_>) -> Result<DirBody, DirError> {
        let mut entries = BTreeMap::new();
        let mut pos = 0;
        while pos < data.len() {
            let at = pos;
            let (entry, next) =
                netstring::split(data, pos).map_err(|source| DirError::Entry { at, source })?;
            pos = next;
            let e = parse_entry(entry, access).map_err(|err| match err {
                EntryError::Netstring(source) => DirError::Entry { at, source },
                EntryError::Name => DirError::Name { at },
                EntryError::Dir(d) => d,
            })?;
            entries.insert(e.name.clone(), e);
        }
        Ok(DirBody { entries })
    }

    /// The body as `_pack_normalized_children` writes it: `writekey` seals write caps
    /// (a mutable directory's), `None` writes none (an immutable directory's); with
    /// `deep_immutable`, `imm.` prefixes are stripped from read-only caps too.
    pub fn to_bytes(&self, writekey: Option<&[u8; 16]>, deep_immutable: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.entries.values() {
            netstring::write(&mut out, &e.pack(writekey, deep_immutable));
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(&nfc(name))
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries.get_mut(&nfc(name))
    }

    /// Add or replace the child of `entry`'s name; the one it replaced, if any.
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        self.entries.insert(entry.name.clone(), entry)
    }

    pub fn remove(&mut self, name: &str) -> Option<Entry> {
        self.entries.remove(&nfc(name))
    }

    /// The children in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn nfc(name: &str) -> String {
    name.nfc().collect()
}

enum EntryError {
    Netstring(NetstringError),
    Name,
    Dir(DirError),
}

fn parse_entry(entry: &[u8], access: Access<'_>) -> Result<Entry, EntryError> {
    let mut fields = [&b""[..]; 4];
    let mut pos = 0;
    for f in &mut fields {
        let (data, next) = netstring::split(entry, pos).map_err(EntryError::Netstring)?;
        *f = data;
        pos = next;
    }
    // Bytes after the fourth netstring are ignored, as `split_netstring` does.
    let [name, ro_uri, rwcapdata, metadata] = fields;
    let name: String = std::str::from_utf8(name)
        .map_err(|_| EntryError::Name)?
        .nfc()
        .collect();
    let rw_uri = match access {
        Access::Immutable if !rwcapdata.is_empty() => {
            return Err(EntryError::Dir(DirError::WriteCapInImmutable { name }));
        }
        Access::Writer(key) => decrypt_rwcapdata(key, rwcapdata),
        Access::Immutable | Access::ReadOnly => Vec::new(),
    };
    let metadata = match pyjson::loads(metadata) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(EntryError::Dir(DirError::MetadataNotObject { name })),
        Err(source) => return Err(EntryError::Dir(DirError::Metadata { name, source })),
    };
    let writekey = match access {
        Access::Writer(k) => Some(*k),
        Access::Immutable | Access::ReadOnly => None,
    };
    Ok(Entry {
        name,
        ro_uri: rstrip_spaces(ro_uri).to_vec(),
        rw_uri: rstrip_spaces(&rw_uri).to_vec(),
        metadata,
        // A read-only reader cannot write the body back; only a writer's and an immutable
        // directory's entries are kept for re-packing.
        packed: match access {
            Access::ReadOnly => None,
            Access::Immutable | Access::Writer(_) => Some(Packed {
                bytes: entry.to_vec(),
                writekey,
                deep_immutable: matches!(access, Access::Immutable),
            }),
        },
    })
}

/// `_encrypt_rw_uri`: `salt || AES-CTR(key, rw_uri) || MAC`, where the salt is a hash of
/// the write cap, the key a hash of the salt and the directory's write key, and the MAC
/// Tahoe's HMAC (never checked by readers since Tahoe 1.3, still written).
pub fn encrypt_rw_uri(writekey: &[u8; 16], rw_uri: &[u8]) -> Vec<u8> {
    let salt = mutable_rwcap_salt_hash(rw_uri);
    let key = mutable_rwcap_key_hash(&salt, writekey);
    let mut out = Vec::with_capacity(rw_uri.len() + RWCAP_OVERHEAD);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&aes_ctr(&key, rw_uri));
    let mac = tahoe_hmac(&key, &out);
    out.extend_from_slice(&mac);
    out
}

/// `_decrypt_rwcapdata`: the write cap sealed in `data` (empty when `data` holds none).
/// The MAC is not checked, as in Tahoe.
pub fn decrypt_rwcapdata(writekey: &[u8; 16], data: &[u8]) -> Vec<u8> {
    if data.len() <= RWCAP_OVERHEAD {
        return Vec::new();
    }
    let (salt, rest) = data.split_at(16);
    let crypttext = &rest[..rest.len() - 32];
    let key = mutable_rwcap_key_hash(salt, writekey);
    aes_ctr(&key, crypttext)
}

/// `strip_prefix_for_ro`: `ro.` is implied in a read-only slot; `imm.` only in a deeply
/// immutable directory.
pub fn strip_prefix_for_ro(ro_uri: &[u8], deep_immutable: bool) -> &[u8] {
    if let Some(rest) = ro_uri.strip_prefix(ALLEGED_IMMUTABLE_PREFIX) {
        if deep_immutable {
            rest
        } else {
            ro_uri
        }
    } else if let Some(rest) = ro_uri.strip_prefix(ALLEGED_READONLY_PREFIX) {
        rest
    } else {
        ro_uri
    }
}

fn rstrip_spaces(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &b[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, i64)]) -> Object {
        let mut o = Object::new();
        for (k, v) in pairs {
            o.insert(*k, Value::Int(v.to_string()));
        }
        o
    }

    #[test]
    fn write_caps_are_sealed_and_opened() {
        let key = [7u8; 16];
        let cap = b"URI:SSK:aaaa:bbbb";
        let sealed = encrypt_rw_uri(&key, cap);
        assert_eq!(sealed.len(), cap.len() + 48);
        assert!(!sealed.windows(cap.len()).any(|w| w == cap));
        assert_eq!(decrypt_rwcapdata(&key, &sealed), cap);
        assert_ne!(decrypt_rwcapdata(&[8u8; 16], &sealed), cap);
        // A child without a write cap still carries 48 bytes in a mutable directory.
        assert_eq!(encrypt_rw_uri(&key, b"").len(), 48);
        assert_eq!(decrypt_rwcapdata(&key, &encrypt_rw_uri(&key, b"")), b"");
        assert_eq!(decrypt_rwcapdata(&key, b"short"), b"");
    }

    #[test]
    fn bodies_round_trip_sorted_by_name() {
        let key = [1u8; 16];
        let mut d = DirBody::new();
        d.insert(Entry::new("zeta", b"URI:CHK:z", b"", meta(&[("a", 1)])));
        d.insert(Entry::new(
            "alpha",
            b"URI:SSK-RO:x",
            b"URI:SSK:y",
            Object::new(),
        ));
        let body = d.to_bytes(Some(&key), false);
        let back = DirBody::parse(&body, Access::Writer(&key)).unwrap();
        let names: Vec<_> = back.iter().map(|e| e.name().to_owned()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(back.get("alpha").unwrap().rw_uri, b"URI:SSK:y");
        assert_eq!(back.get("zeta").unwrap().metadata, meta(&[("a", 1)]));
        // Written back unchanged, byte for byte, without re-encrypting.
        assert!(back.iter().all(Entry::is_unchanged));
        assert_eq!(back.to_bytes(Some(&key), false), body);
        // A reader through the read cap sees no write caps.
        let ro = DirBody::parse(&body, Access::ReadOnly).unwrap();
        assert_eq!(ro.get("alpha").unwrap().rw_uri, b"");
        assert_eq!(ro.get("alpha").unwrap().ro_uri, b"URI:SSK-RO:x");
    }

    #[test]
    fn names_are_nfc_and_the_later_duplicate_wins() {
        let mut d = DirBody::new();
        d.insert(Entry::new("e\u{301}", b"URI:LIT:a", b"", Object::new()));
        assert_eq!(d.get("\u{e9}").unwrap().name(), "\u{e9}");
        assert!(d.get("e\u{301}").is_some());
        let mut body = Vec::new();
        for (name, cap) in [("e\u{301}", "URI:LIT:first"), ("\u{e9}", "URI:LIT:second")] {
            let mut e = Vec::new();
            netstring::write(&mut e, name.as_bytes());
            netstring::write(&mut e, cap.as_bytes());
            netstring::write(&mut e, b"");
            netstring::write(&mut e, b"{}");
            netstring::write(&mut body, &e);
        }
        let d = DirBody::parse(&body, Access::Immutable).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d.get("\u{e9}").unwrap().ro_uri, b"URI:LIT:second");
    }

    #[test]
    fn an_edit_repacks_only_the_edited_entry() {
        let key = [3u8; 16];
        let mut d = DirBody::new();
        d.insert(Entry::new("a", b"URI:CHK:1", b"", Object::new()));
        d.insert(Entry::new("b", b"URI:CHK:2", b"", Object::new()));
        let body = d.to_bytes(Some(&key), false);
        let mut back = DirBody::parse(&body, Access::Writer(&key)).unwrap();
        back.get_mut("b")
            .unwrap()
            .metadata_mut()
            .insert("x", Value::Bool(true));
        assert!(back.get("a").unwrap().is_unchanged());
        assert!(!back.get("b").unwrap().is_unchanged());
        let again =
            DirBody::parse(&back.to_bytes(Some(&key), false), Access::Writer(&key)).unwrap();
        assert_eq!(
            again.get("b").unwrap().metadata.get("x"),
            Some(&Value::Bool(true))
        );
    }

    #[test]
    fn prefixes_are_stripped_as_tahoe_does() {
        assert_eq!(strip_prefix_for_ro(b"ro.URI:NEW:x", false), b"URI:NEW:x");
        assert_eq!(
            strip_prefix_for_ro(b"imm.URI:NEW:x", false),
            b"imm.URI:NEW:x"
        );
        assert_eq!(strip_prefix_for_ro(b"imm.URI:NEW:x", true), b"URI:NEW:x");
        assert_eq!(strip_prefix_for_ro(b"URI:CHK:x", true), b"URI:CHK:x");
    }

    #[test]
    fn broken_bodies_are_refused_with_where() {
        let key = [0u8; 16];
        let mut e = Vec::new();
        netstring::write(&mut e, b"name");
        netstring::write(&mut e, b"URI:LIT:a");
        netstring::write(&mut e, &encrypt_rw_uri(&key, b"URI:SSK:w"));
        netstring::write(&mut e, b"[]");
        let mut body = Vec::new();
        netstring::write(&mut body, &e);
        assert!(matches!(
            DirBody::parse(&body, Access::Immutable),
            Err(DirError::WriteCapInImmutable { .. })
        ));
        assert!(matches!(
            DirBody::parse(&body, Access::Writer(&key)),
            Err(DirError::MetadataNotObject { .. })
        ));
        assert!(matches!(
            DirBody::parse(b"5:abc,", Access::ReadOnly),
            Err(DirError::Entry { at: 0, .. })
        ));
        let mut two = Vec::new();
        netstring::write(&mut two, b"1:a,");
        assert!(matches!(
            DirBody::parse(&two, Access::ReadOnly),
            Err(DirError::Entry {
                at: 0,
                source: NetstringError::NoLength(4)
            })
        ));
        assert_eq!(DirBody::parse(b"", Access::ReadOnly).unwrap().len(), 0);
    }
}

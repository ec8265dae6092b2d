//! The edits a directory's writer makes, as Tahoe 1.20's modifiers make them (`dirnode.py`:
//! `Adder`, `Deleter`, `MetadataSetter`, `update_metadata`): each takes the body read from
//! the grid and changes it, or says there is nothing to change, or refuses. A directory
//! edit is a read-modify-write of the mutable file; after a collision the edit is applied
//! again to what was read the second time (`first_time` false), and Tahoe's rules for that
//! are kept: a delete that finds its child already gone succeeds.
//!
//! The time is passed in (seconds since the epoch, as Python's `time.time()`), like every
//! input of the core.

use super::body::{DirBody, Entry};
use super::pyjson::{Object, Value};
use crate::cap::Cap;

/// What a child is, as far as an edit cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildKind {
    File,
    Directory,
    /// A cap cairn does not know (from a future version) or none: kept as it is.
    Unknown,
}

impl ChildKind {
    /// The kind of the child with these caps (the write cap if any, else the read cap).
    pub fn of(ro_uri: &[u8], rw_uri: &[u8]) -> ChildKind {
        let cap = if rw_uri.is_empty() { ro_uri } else { rw_uri };
        match Cap::parse_bytes(cap) {
            Ok(c) if c.is_directory() => ChildKind::Directory,
            Ok(c) if !c.is_verifier() => ChildKind::File,
            _ => ChildKind::Unknown,
        }
    }

    pub fn of_entry(e: &Entry) -> ChildKind {
        ChildKind::of(&e.ro_uri, &e.rw_uri)
    }
}

/// Whether adding a child may replace one of the same name (Tahoe's `overwrite`, the web
/// API's `replace=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// `replace=true` (the default).
    Yes,
    /// `replace=false`: an existing child is an error.
    No,
    /// `replace=only-files`: a file may be replaced, a directory not.
    OnlyFiles,
}

/// A child to add: its caps and, if given, the metadata that replaces the old child's
/// (Tahoe's `tahoe` key is always kept from the old one and its times updated).
#[derive(Clone, Debug, PartialEq)]
pub struct NewChild {
    pub name: String,
    pub ro_uri: Vec<u8>,
    pub rw_uri: Vec<u8>,
    pub metadata: Option<Object>,
}

/// One edit of a directory.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// `Adder`: add or replace children (one or many, as `set_children`).
    Add {
        children: Vec<NewChild>,
        overwrite: Overwrite,
    },
    /// `Deleter`: remove a child.
    Delete {
        name: String,
        must_exist: bool,
        must_be: Option<ChildKind>,
    },
    /// `MetadataSetter`: replace a child's metadata (but its `tahoe` key).
    SetMetadata { name: String, metadata: Object },
}

/// Why an edit is refused (Tahoe's exception, and the web API status it becomes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// `NoSuchChildError` (404).
    #[error("no child named {0:?}")]
    NoSuchChild(String),
    /// `ExistingChildError` (409).
    #[error("child {name:?} already exists{}", if *.as_directory { " as a directory" } else { "" })]
    ExistingChild { name: String, as_directory: bool },
    /// `ChildOfWrongTypeError` (400).
    #[error("{0}")]
    WrongType(&'static str),
}

/// What an edit did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The body changed: write it.
    Changed,
    /// Nothing to change (Tahoe's modifier returning `None`): no write.
    Unchanged,
}

/// Apply `edit` to `body` at time `now`. `first_time` is false when the edit is applied
/// again after a collision.
pub fn apply(
    body: &mut DirBody,
    edit: &Edit,
    now: f64,
    first_time: bool,
) -> Result<Applied, EditError> {
    match edit {
        Edit::Add {
            children,
            overwrite,
        } => {
            for c in children {
                let probe = Entry::new(&c.name, &c.ro_uri, &c.rw_uri, Object::new());
                let old = body.get(probe.name());
                let old_metadata = match old {
                    None => None,
                    Some(_) if *overwrite == Overwrite::No => {
                        return Err(EditError::ExistingChild {
                            name: probe.name().to_owned(),
                            as_directory: false,
                        });
                    }
                    Some(o)
                        if *overwrite == Overwrite::OnlyFiles
                            && ChildKind::of_entry(o) == ChildKind::Directory =>
                    {
                        return Err(EditError::ExistingChild {
                            name: probe.name().to_owned(),
                            as_directory: true,
                        });
                    }
                    Some(o) => Some(o.metadata.clone()),
                };
                let metadata = update_metadata(old_metadata, c.metadata.as_ref(), now);
                let rw: &[u8] = if no_write(&metadata) { b"" } else { &c.rw_uri };
                body.insert(Entry::new(&c.name, &c.ro_uri, rw, metadata));
            }
            Ok(Applied::Changed)
        }
        Edit::Delete {
            name,
            must_exist,
            must_be,
        } => {
            let Some(old) = body.get(name) else {
                if first_time && *must_exist {
                    return Err(EditError::NoSuchChild(name.clone()));
                }
                return Ok(Applied::Unchanged);
            };
            // Unknown children can be removed whatever was required of them.
            match (must_be, ChildKind::of_entry(old)) {
                (Some(ChildKind::Directory), ChildKind::File) => {
                    return Err(EditError::WrongType(
                        "delete required a directory, not a file",
                    ));
                }
                (Some(ChildKind::File), ChildKind::Directory) => {
                    return Err(EditError::WrongType(
                        "delete required a file, not a directory",
                    ));
                }
                _ => {}
            }
            body.remove(name);
            Ok(Applied::Changed)
        }
        Edit::SetMetadata { name, metadata } => {
            let Some(old) = body.get_mut(name) else {
                return Err(EditError::NoSuchChild(name.clone()));
            };
            let new = update_metadata(Some(old.metadata.clone()), Some(metadata), now);
            if no_write(&new) {
                let ro = old.ro_uri.clone();
                old.set_caps(&ro, b"");
            }
            *old.metadata_mut() = new;
            Ok(Applied::Changed)
        }
    }
}

/// `metadata.get('no-write', False)` is true: the child is stored read-only.
fn no_write(metadata: &Object) -> bool {
    match metadata.get("no-write") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Int(i)) => i != "0",
        Some(Value::Float(f)) => *f != 0.0,
        Some(Value::Str(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// Tahoe's `update_metadata`: `new` (if given) replaces everything but the `tahoe` key;
/// `tahoe.linkcrtime` is set once (from an old top-level `ctime`, as Tahoe < 1.4 wrote it,
/// else `now`) and `tahoe.linkmotime` is `now`.
pub fn update_metadata(old: Option<Object>, new: Option<&Object>, now: f64) -> Object {
    let mut metadata = old.unwrap_or_default();
    let old_ctime = metadata.get("ctime").cloned();
    if let Some(new) = new {
        let mut m = new.clone();
        m.remove("tahoe");
        if let Some(t) = metadata.get("tahoe") {
            m.insert("tahoe", t.clone());
        }
        metadata = m;
    }
    let mut sys = match metadata.get("tahoe") {
        Some(Value::Object(o)) => o.clone(),
        // Tahoe would fail on a `tahoe` key that is not a dict; cairn starts it afresh.
        _ => Object::new(),
    };
    if sys.get("linkcrtime").is_none() {
        sys.insert("linkcrtime", old_ctime.unwrap_or(Value::Float(now)));
    }
    sys.insert("linkmotime", Value::Float(now));
    // In place if the key was there (Python's `metadata['tahoe'] = sysmd` keeps its position).
    metadata.insert("tahoe", Value::Object(sys));
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirnode::pyjson;

    const CHK: &[u8] = b"URI:CHK:bd3kkbkkzsbbnilvpgqkrjqc3q:pjiykp2udkvhdsjqx7ijyyfzpbtsusfj4nusfhbcmimeldsdbj7q:3:10:65536";
    const DIR: &[u8] =
        b"URI:DIR2:3dgxxe4zqrgbxurkcbpcu6mdeq:hhslc7rxx5dwg7wl7v52esc3ll7jvvn6g5oyxjizxfkp74jwgfsq";

    fn obj(text: &str) -> Object {
        match pyjson::loads(text.as_bytes()).unwrap() {
            Value::Object(o) => o,
            v => panic!("{v:?}"),
        }
    }

    fn add(name: &str, cap: &[u8], overwrite: Overwrite) -> Edit {
        Edit::Add {
            children: vec![NewChild {
                name: name.into(),
                ro_uri: cap.to_vec(),
                rw_uri: Vec::new(),
                metadata: None,
            }],
            overwrite,
        }
    }

    fn dumps(o: &Object) -> String {
        pyjson::dumps(&Value::Object(o.clone()))
    }

    #[test]
    fn kinds_come_from_the_cap() {
        assert_eq!(ChildKind::of(CHK, b""), ChildKind::File);
        assert_eq!(ChildKind::of(b"", DIR), ChildKind::Directory);
        assert_eq!(ChildKind::of(b"x-future:abc", b""), ChildKind::Unknown);
        assert_eq!(ChildKind::of(b"", b""), ChildKind::Unknown);
    }

    #[test]
    fn metadata_times_as_tahoe_sets_them() {
        let m = update_metadata(None, None, 100.5);
        assert_eq!(
            dumps(&m),
            r#"{"tahoe": {"linkcrtime": 100.5, "linkmotime": 100.5}}"#
        );
        // A second update keeps linkcrtime and moves linkmotime.
        let m = update_metadata(Some(m), None, 200.0);
        assert_eq!(
            dumps(&m),
            r#"{"tahoe": {"linkcrtime": 100.5, "linkmotime": 200.0}}"#
        );
        // New metadata replaces the user's keys, never the `tahoe` key.
        let m = update_metadata(Some(m), Some(&obj(r#"{"a": 1, "tahoe": {"x": 1}}"#)), 300.0);
        assert_eq!(
            dumps(&m),
            r#"{"a": 1, "tahoe": {"linkcrtime": 100.5, "linkmotime": 300.0}}"#
        );
        // The `tahoe` key keeps its place among the others.
        let m = update_metadata(Some(obj(r#"{"tahoe": {}, "z": 1}"#)), None, 2.0);
        assert_eq!(
            dumps(&m),
            r#"{"tahoe": {"linkcrtime": 2.0, "linkmotime": 2.0}, "z": 1}"#
        );
        // Tahoe < 1.4's top-level ctime becomes linkcrtime.
        let m = update_metadata(Some(obj(r#"{"ctime": 7}"#)), None, 9.0);
        assert_eq!(
            dumps(&m),
            r#"{"ctime": 7, "tahoe": {"linkcrtime": 7, "linkmotime": 9.0}}"#
        );
    }

    #[test]
    fn add_respects_overwrite() {
        let mut d = DirBody::new();
        assert_eq!(
            apply(&mut d, &add("f", CHK, Overwrite::No), 1.0, true),
            Ok(Applied::Changed)
        );
        assert_eq!(
            apply(&mut d, &add("f", CHK, Overwrite::No), 2.0, true),
            Err(EditError::ExistingChild {
                name: "f".into(),
                as_directory: false
            })
        );
        assert_eq!(
            apply(&mut d, &add("sub", DIR, Overwrite::Yes), 2.0, true),
            Ok(Applied::Changed)
        );
        assert_eq!(
            apply(&mut d, &add("sub", CHK, Overwrite::OnlyFiles), 3.0, true),
            Err(EditError::ExistingChild {
                name: "sub".into(),
                as_directory: true
            })
        );
        assert_eq!(
            apply(&mut d, &add("f", CHK, Overwrite::OnlyFiles), 4.0, true),
            Ok(Applied::Changed)
        );
        // Replacing keeps the link's creation time.
        let f = d.get("f").unwrap();
        assert_eq!(
            dumps(&f.metadata),
            r#"{"tahoe": {"linkcrtime": 1.0, "linkmotime": 4.0}}"#
        );
    }

    #[test]
    fn no_write_stores_the_child_read_only() {
        let mut d = DirBody::new();
        let edit = Edit::Add {
            children: vec![NewChild {
                name: "m".into(),
                ro_uri: b"URI:SSK-RO:a:b".to_vec(),
                rw_uri: b"URI:SSK:c:b".to_vec(),
                metadata: Some(obj(r#"{"no-write": true}"#)),
            }],
            overwrite: Overwrite::Yes,
        };
        apply(&mut d, &edit, 1.0, true).unwrap();
        assert_eq!(d.get("m").unwrap().rw_uri, b"");
        assert_eq!(d.get("m").unwrap().ro_uri, b"URI:SSK-RO:a:b");
    }

    #[test]
    fn delete_after_a_collision_tolerates_a_child_already_gone() {
        let mut d = DirBody::new();
        let del = Edit::Delete {
            name: "gone".into(),
            must_exist: true,
            must_be: None,
        };
        assert_eq!(
            apply(&mut d, &del, 1.0, true),
            Err(EditError::NoSuchChild("gone".into()))
        );
        assert_eq!(apply(&mut d, &del, 1.0, false), Ok(Applied::Unchanged));
        apply(&mut d, &add("f", CHK, Overwrite::Yes), 1.0, true).unwrap();
        let must_dir = Edit::Delete {
            name: "f".into(),
            must_exist: true,
            must_be: Some(ChildKind::Directory),
        };
        assert!(matches!(
            apply(&mut d, &must_dir, 1.0, true),
            Err(EditError::WrongType(_))
        ));
        let del = Edit::Delete {
            name: "f".into(),
            must_exist: true,
            must_be: Some(ChildKind::File),
        };
        assert_eq!(apply(&mut d, &del, 1.0, true), Ok(Applied::Changed));
        assert!(d.is_empty());
    }

    #[test]
    fn set_metadata_needs_the_child() {
        let mut d = DirBody::new();
        let set = Edit::SetMetadata {
            name: "x".into(),
            metadata: obj(r#"{"k": "v"}"#),
        };
        assert_eq!(
            apply(&mut d, &set, 1.0, true),
            Err(EditError::NoSuchChild("x".into()))
        );
        apply(&mut d, &add("x", CHK, Overwrite::Yes), 1.0, true).unwrap();
        apply(&mut d, &set, 5.0, true).unwrap();
        assert_eq!(
            dumps(&d.get("x").unwrap().metadata),
            r#"{"k": "v", "tahoe": {"linkcrtime": 1.0, "linkmotime": 5.0}}"#
        );
    }
}

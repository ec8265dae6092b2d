//! Directories: Tahoe's dirnode format. A directory is a file (mutable: SDMF or MDMF;
//! immutable: CHK or LIT) whose contents are its children's names, caps and metadata.
//!
//! - [`body`]: the body's bytes (a netstring per child; write caps sealed with the
//!   directory's write key), read and written byte for byte as Tahoe 1.20 does, with
//!   unchanged entries written back as read.
//! - [`edit`]: the writer's edits (add, delete, set metadata) with Tahoe's rules for
//!   replacing, link times and re-applying after a collision.
//! - [`pyjson`]: the metadata's JSON as Python reads and writes it (needed for Tahoe's
//!   immutable-directory caps, which hash the body).
//!
//! The byte layout is in `docs/formats/directory.md`.

pub mod body;
pub mod edit;
pub mod pyjson;

pub use body::{Access, DirBody, DirError, Entry};
pub use edit::{apply, Applied, ChildKind, Edit, EditError, NewChild, Overwrite};

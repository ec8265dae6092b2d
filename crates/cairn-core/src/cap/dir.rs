//! Directory caps (`URI:DIR2*`): a file cap of the underlying node with its prefix
//! replaced (`_DirectoryBaseURI`). The storage index is the inner cap's.

use core::fmt;

use super::{
    ChkReadCap, ChkVerifyCap, LitCap, MdmfReadCap, MdmfVerifyCap, MdmfWriteCap, SdmfReadCap,
    SdmfVerifyCap, SdmfWriteCap, StorageIndex,
};

macro_rules! dir_cap {
    ($(#[$m:meta])* $name:ident, $inner:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name($inner);

        impl $name {
            /// Wrap the file cap of the directory's underlying node.
            pub fn new(filenode_cap: $inner) -> Self {
                $name(filenode_cap)
            }

            /// The cap of the underlying file node (`get_filenode_cap`).
            pub fn filenode_cap(&self) -> &$inner {
                &self.0
            }

            /// Unwrap into the file node cap.
            pub fn into_filenode_cap(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                self.0.fmt_body(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl From<$inner> for $name {
            fn from(c: $inner) -> Self {
                $name(c)
            }
        }
    };
}

dir_cap!(
    /// `URI:DIR2:<writekey>:<fingerprint>`: writable SDMF directory (`DirectoryURI`).
    SdmfDirWriteCap, SdmfWriteCap, "URI:DIR2:"
);
dir_cap!(
    /// `URI:DIR2-RO:<readkey>:<fingerprint>`: read-only SDMF directory (`ReadonlyDirectoryURI`).
    SdmfDirReadCap, SdmfReadCap, "URI:DIR2-RO:"
);
dir_cap!(
    /// `URI:DIR2-Verifier:<si>:<fingerprint>` (`DirectoryURIVerifier`).
    SdmfDirVerifyCap, SdmfVerifyCap, "URI:DIR2-Verifier:"
);
dir_cap!(
    /// `URI:DIR2-MDMF:<writekey>:<fingerprint>`: writable MDMF directory (`MDMFDirectoryURI`).
    MdmfDirWriteCap, MdmfWriteCap, "URI:DIR2-MDMF:"
);
dir_cap!(
    /// `URI:DIR2-MDMF-RO:<readkey>:<fingerprint>` (`ReadonlyMDMFDirectoryURI`).
    MdmfDirReadCap, MdmfReadCap, "URI:DIR2-MDMF-RO:"
);
dir_cap!(
    /// `URI:DIR2-MDMF-Verifier:<si>:<fingerprint>` (`MDMFDirectoryURIVerifier`).
    MdmfDirVerifyCap, MdmfVerifyCap, "URI:DIR2-MDMF-Verifier:"
);
dir_cap!(
    /// `URI:DIR2-CHK:<key>:<ueb_hash>:<k>:<N>:<size>`: immutable directory (`ImmutableDirectoryURI`).
    ChkDirCap, ChkReadCap, "URI:DIR2-CHK:"
);
dir_cap!(
    /// `URI:DIR2-CHK-Verifier:<si>:<ueb_hash>:<k>:<N>:<size>` (`ImmutableDirectoryURIVerifier`).
    ChkDirVerifyCap, ChkVerifyCap, "URI:DIR2-CHK-Verifier:"
);
dir_cap!(
    /// `URI:DIR2-LIT:<b32(packed directory)>`: small immutable directory (`LiteralDirectoryURI`).
    /// No storage index, no verify cap.
    LitDirCap, LitCap, "URI:DIR2-LIT:"
);

impl SdmfDirWriteCap {
    /// The read-only directory cap.
    pub fn readonly(&self) -> SdmfDirReadCap {
        SdmfDirReadCap(self.0.readonly())
    }
    /// The directory verify cap.
    pub fn verifier(&self) -> SdmfDirVerifyCap {
        SdmfDirVerifyCap(self.0.verifier())
    }
    /// The storage index of the underlying mutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl SdmfDirReadCap {
    /// The directory verify cap.
    pub fn verifier(&self) -> SdmfDirVerifyCap {
        SdmfDirVerifyCap(self.0.verifier())
    }
    /// The storage index of the underlying mutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl SdmfDirVerifyCap {
    /// The storage index of the underlying mutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl MdmfDirWriteCap {
    /// The read-only directory cap.
    pub fn readonly(&self) -> MdmfDirReadCap {
        MdmfDirReadCap(self.0.readonly())
    }
    /// The directory verify cap.
    pub fn verifier(&self) -> MdmfDirVerifyCap {
        MdmfDirVerifyCap(self.0.verifier())
    }
    /// The storage index of the underlying mutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl MdmfDirReadCap {
    /// The directory verify cap.
    pub fn verifier(&self) -> MdmfDirVerifyCap {
        MdmfDirVerifyCap(self.0.verifier())
    }
    /// The storage index of the underlying mutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl MdmfDirVerifyCap {
    /// The storage index of the underlying mutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl ChkDirCap {
    /// The directory verify cap.
    pub fn verifier(&self) -> ChkDirVerifyCap {
        ChkDirVerifyCap(self.0.verifier())
    }
    /// The storage index of the underlying immutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

impl ChkDirVerifyCap {
    /// The storage index of the underlying immutable file.
    pub fn storage_index(&self) -> StorageIndex {
        self.0.storage_index()
    }
}

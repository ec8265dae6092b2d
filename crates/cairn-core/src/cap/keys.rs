//! Storage indexes and the secret key newtypes that caps carry.

use core::fmt;

use zeroize::Zeroize;

use super::CapError;
use crate::base32;

/// A 16-byte storage index: where a file's shares live on storage servers.
///
/// Not a secret. Text form is 26 characters of Tahoe base32 (`si_b2a`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageIndex(pub [u8; 16]);

impl StorageIndex {
    /// The 26-character base32 form.
    pub fn to_base32(&self) -> String {
        base32::encode(&self.0)
    }

    /// Parse the 26-character base32 form.
    pub fn from_base32(text: &str) -> Result<StorageIndex, CapError> {
        base32::decode_array::<16>(text)
            .map(StorageIndex)
            .map_err(|source| CapError::BadBase32 {
                field: "storage index",
                source,
            })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for StorageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base32())
    }
}

impl fmt::Debug for StorageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageIndex({})", self.to_base32())
    }
}

impl From<[u8; 16]> for StorageIndex {
    fn from(b: [u8; 16]) -> Self {
        StorageIndex(b)
    }
}

macro_rules! secret_key {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        ///
        /// Debug never prints the bytes; the bytes are zeroized on drop.
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// Wrap raw key bytes.
            pub fn new(bytes: [u8; 16]) -> Self {
                $name(bytes)
            }

            /// The raw key bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// The base32 text form (as it appears inside a cap). This is the secret.
            pub fn to_base32(&self) -> String {
                base32::encode(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl From<[u8; 16]> for $name {
            fn from(b: [u8; 16]) -> Self {
                $name(b)
            }
        }
    };
}

secret_key!(
    /// The AES-128 key of an immutable (CHK) file: the secret half of a `URI:CHK:` cap.
    ChkKey
);
secret_key!(
    /// The writekey of a mutable file (SDMF or MDMF): grants write access.
    WriteKey
);
secret_key!(
    /// The readkey of a mutable file: `ssk_readkey_hash(writekey)`; grants read access.
    ReadKey
);

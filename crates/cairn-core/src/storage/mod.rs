//! Storage-server formats, pure: share containers and leases as Tahoe keeps them on disk,
//! the mutable test-and-write semantics, and the HTTP storage protocol's messages.
//! `cairn-storage` does the I/O around them.

pub mod allocate;
pub mod container;
pub mod gbs;
pub mod gbs_client_support;
pub mod rtw;

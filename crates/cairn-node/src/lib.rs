//! cairn-node: one node directory, run as Tahoe-LAFS runs one.
//!
//! A node is what `cairn run DIR` starts from `DIR/tahoe.cfg`: the storage server when
//! `[storage] enabled`, and, when `[node] web.port` is set, the grid client (servers from
//! `DIR/private/servers.yaml`) behind a local HTTP gateway that speaks the part of Tahoe's
//! web API that exists so far (`PUT /uri`, `GET /uri/$CAP` with `Range`, `?t=json`,
//! `GET /?t=json`). See `docs/client-node.md`.
//!
//! - [`config`], [`create`]: re-exported from `cairn_config` (`client`, `create`), which owns
//!   the node directory: `tahoe.cfg` client keys, `web.port`, the secrets, node creation
//! - [`gateway`]: the web API
//! - [`memory`]: keeping a long-running node's resident memory near its working set
//! - [`node`]: starting and stopping everything ([`start`], [`run`])

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod gateway;
pub mod memory;
pub mod node;

pub use cairn_config::{client as config, create};
pub use config::{ClientConfig, NodeConfigError, Secrets, WebPort};
pub use create::{create_client, create_node, CreateClientOptions};
pub use node::{run, start, RunningNode};

/// Errors of node creation and start-up.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] NodeConfigError),
    #[error(transparent)]
    StorageConfig(#[from] cairn_config::config::ConfigError),
    #[cfg(feature = "storage")]
    #[error(transparent)]
    Server(#[from] cairn_storage::server::ServerError),
    #[error(transparent)]
    Identity(#[from] cairn_config::identity::IdentityError),
    #[error(transparent)]
    Create(#[from] cairn_config::create::CreateError),
    #[error(transparent)]
    Servers(#[from] cairn_client::servers::ServersYamlError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

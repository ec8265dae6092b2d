//! The HTTP storage protocol ("Great Black Swamp") v1 endpoints, as Tahoe-LAFS 1.20's
//! `storage/http_server.py` serves them (status codes included; see
//! `docs/formats/http-storage-protocol.md` for where cairn is stricter).
//!
//! Order of checks per request, as Tahoe: route (storage index and share number must parse,
//! else 404) → `Authorization` (401/400) → `X-Tahoe-Authorization` secrets (400) → `Accept`
//! for CBOR answers (406, checked before any work) → body (415/413/400) → the operation.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use futures_util::StreamExt;

use cairn_core::cap::StorageIndex;
use cairn_core::ids::ShareNum;
use cairn_core::storage::allocate;
use cairn_core::storage::container::{
    expiration_for, hash_lease_secret, LeaseGrant, NodeId, SecretForm, IMMUTABLE_DATA_OFFSET,
    MUTABLE_DATA_OFFSET,
};
use cairn_core::storage::gbs::{self, ByteRange, GbsError, ReadAnswer, Secrets};
use cairn_core::storage::rtw::{RtwContext, RtwSecrets};

use crate::clock::{iso_utc, Clock};
use crate::config::Limits;
use crate::leasedb::{self, AccountId, Lease, LeaseDb, ShareKey};
use crate::store::{self, Store, StoreError};

mod corrupt;
mod error;
mod immutable;
mod lease;
mod mutable;
mod range_set;
mod read;
mod request;
mod state;

pub use error::HttpError;
pub use range_set::RangeSet;
pub use state::ServerState;

use corrupt::*;
use error::*;
use immutable::*;
use lease::*;
use mutable::*;
use read::*;
use request::*;
use state::{UploadSlot, UploadState};

// ------------------------------------------------------------------------------------------
// Router

/// All GBS v1 routes. Unknown paths answer 404, known paths with the wrong method 405.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/storage/v1/version", get(version))
        .route("/storage/v1/immutable/{si}", post(allocate))
        .route("/storage/v1/immutable/{si}/shares", get(list_immutable))
        .route(
            "/storage/v1/immutable/{si}/{shnum}",
            get(read_immutable).patch(write_immutable),
        )
        .route("/storage/v1/immutable/{si}/{shnum}/abort", put(abort))
        .route(
            "/storage/v1/immutable/{si}/{shnum}/corrupt",
            post(corrupt_immutable),
        )
        .route("/storage/v1/lease/{si}", put(add_lease))
        .route(
            "/storage/v1/mutable/{si}/read-test-write",
            post(read_test_write),
        )
        .route("/storage/v1/mutable/{si}/shares", get(list_mutable))
        .route("/storage/v1/mutable/{si}/{shnum}", get(read_mutable))
        .route(
            "/storage/v1/mutable/{si}/{shnum}/corrupt",
            post(corrupt_mutable),
        )
        .fallback(|| async { empty(StatusCode::NOT_FOUND) })
        .with_state(state)
}

type St = State<Arc<ServerState>>;

async fn version(State(st): St, headers: HeaderMap) -> HResult {
    authorize(&st, &headers, gbs::SECRETS_NONE)?;
    check_accept(&headers)?;
    let st2 = st.clone();
    let avail = blocking(move || st2.available_space()).await?;
    let v = gbs::VersionResponse {
        maximum_immutable_share_size: avail.min(st.limits.max_immutable_share_size),
        maximum_mutable_share_size: st.limits.max_mutable_share_size,
        available_space: avail,
        application_version: st.app_version.as_bytes().to_vec(),
    };
    Ok(cbor(StatusCode::OK, v.encode()))
}

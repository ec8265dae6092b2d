//! Leases: the owner numbers Tahoe writes and `add_lease` (renew or add).

use super::*;

/// Owner numbers Tahoe writes: 0 for the lease made at allocation, 1 for `add_lease` and
/// mutable writes.
pub(super) const ALLOCATE_LEASE_OWNER: u32 = 0;
pub(super) const ADD_LEASE_OWNER: u32 = 1;

pub(super) async fn add_lease(
    State(st): St,
    UrlPath(si): UrlPath<String>,
    headers: HeaderMap,
) -> HResult {
    let si = parse_si(&si)?;
    let secrets = authorize(&st, &headers, gbs::SECRETS_LEASE)?;
    let (Some(renew), Some(cancel)) = (secrets.lease_renew, secrets.lease_cancel) else {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "missing secrets"));
    };
    let expiration = expiration_for(st.clock.now_secs()).map_err(HttpError::internal)?;
    let st2 = st.clone();
    blocking(move || -> Result<(), HttpError> {
        let st = st2;
        let mut db = st.lock_db();
        let shares = st.store.list_share_numbers(&si)?;
        if shares.is_empty() {
            return Err(HttpError::not_found());
        }
        let grant = LeaseGrant {
            owner_num: ADD_LEASE_OWNER,
            renew_secret: renew,
            cancel_secret: cancel,
            expiration_secs: expiration,
            nodeid: st.nodeid,
        };
        let avail = if st.readonly {
            0
        } else {
            store::disk_available(&st.store.shares_dir, st.reserved_space).unwrap_or(0)
        };
        st.change_bucket(&mut db, &si, || {
            for shnum in shares {
                st.store
                    .add_or_renew_lease(&si, shnum, &grant, Some(avail))?;
            }
            Ok(())
        })
    })
    .await??;
    Ok(empty(StatusCode::NO_CONTENT))
}

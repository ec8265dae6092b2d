//! The secrets a request carries: lease secrets, upload secrets.

use super::*;

/// The lease secrets sent with allocate, lease and read-test-write requests.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseSecrets {
    pub renew: [u8; 32],
    pub cancel: [u8; 32],
}

/// The request secrets that carry a lease's renew and cancel secrets.
pub(super) fn lease_secrets(lease: &LeaseSecrets) -> Secrets {
    Secrets {
        lease_renew: Some(lease.renew),
        lease_cancel: Some(lease.cancel),
        ..Default::default()
    }
}

/// The request secrets that carry an upload secret.
pub(super) fn upload_secrets(upload_secret: &[u8]) -> Secrets {
    Secrets {
        upload: Some(upload_secret.to_vec()),
        ..Default::default()
    }
}

impl std::fmt::Debug for LeaseSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseSecrets(..)")
    }
}

/// A fresh upload secret: 20 random bytes per allocate call, as Tahoe's client makes them.
pub fn new_upload_secret() -> [u8; 20] {
    rand::random()
}

pub(super) fn check_upload_secret(s: &[u8]) -> Result<(), GbsClientError> {
    if s.is_empty() || s.len() > gbs::MAX_SECRET_LEN {
        return Err(GbsClientError::InvalidRequest(
            "upload secret must be 1..=1024 bytes".into(),
        ));
    }
    Ok(())
}

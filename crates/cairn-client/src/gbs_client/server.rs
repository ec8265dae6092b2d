//! Requests about the server and a storage index as a whole: `version`, adding or renewing a lease.

use super::*;

impl GbsClient {
    /// `GET /storage/v1/version`.
    pub async fn version(&self) -> Result<VersionResponse, GbsClientError> {
        let body = self
            .cbor(Req::get("/storage/v1/version".into()), &[200])
            .await?;
        VersionResponse::parse(&body).map_err(|e| self.malformed(format!("version: {e}")))
    }

    /// `PUT /storage/v1/lease/:si`: add a lease, or renew the one with this renew secret.
    /// 204 → Ok; 404 (no shares at all) is an error (Tahoe's storage client ignores it).
    pub async fn add_or_renew_lease(
        &self,
        si: &StorageIndex,
        lease: &LeaseSecrets,
    ) -> Result<(), GbsClientError> {
        let path = format!("/storage/v1/lease/{}", si_str(si));
        self.put_empty(path, &lease_secrets(lease), &[204]).await
    }
}

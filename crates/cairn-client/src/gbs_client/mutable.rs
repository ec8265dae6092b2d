//! Mutable share requests: read-test-write, list, read, advise corrupt.

use super::*;

impl GbsClient {
    /// `POST /storage/v1/mutable/:si/read-test-write`. A 401 means the write enabler does
    /// not match ([`GbsClientError::is_bad_write_enabler`]). Never retried.
    pub async fn read_test_write(
        &self,
        si: &StorageIndex,
        write_enabler: &[u8],
        lease: &LeaseSecrets,
        request: &RtwRequest,
    ) -> Result<RtwResponse, GbsClientError> {
        if write_enabler.is_empty() || write_enabler.len() > gbs::MAX_SECRET_LEN {
            return Err(GbsClientError::InvalidRequest(
                "write enabler must be 1..=1024 bytes".into(),
            ));
        }
        if request.read_vector.len() > gbs::MAX_READ_VECTORS
            || request
                .test_write_vectors
                .values()
                .any(|t| t.test.len() > gbs::MAX_TEST_VECTORS)
        {
            return Err(GbsClientError::InvalidRequest(format!(
                "at most {} read vectors and {} test vectors per share",
                gbs::MAX_READ_VECTORS,
                gbs::MAX_TEST_VECTORS
            )));
        }
        let secrets = Secrets {
            write_enabler: Some(write_enabler.to_vec()),
            ..lease_secrets(lease)
        };
        let req = Req::new(
            Method::POST,
            format!("/storage/v1/mutable/{}/read-test-write", si_str(si)),
            false,
        )
        .secrets(&secrets)
        .cbor(request.encode());
        let body = self.cbor(req, &[200]).await?;
        RtwResponse::parse(&body).map_err(|e| self.malformed(format!("read-test-write: {e}")))
    }

    /// `GET /storage/v1/mutable/:si/shares`.
    pub async fn list_mutable_shares(
        &self,
        si: &StorageIndex,
    ) -> Result<BTreeSet<ShareNum>, GbsClientError> {
        self.list_shares("mutable", si).await
    }

    /// `GET /storage/v1/mutable/:si/:shnum` with `Range`.
    pub async fn read_mutable(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, GbsClientError> {
        self.read_share("mutable", si, shnum, offset, length).await
    }

    /// `POST /storage/v1/mutable/:si/:shnum/corrupt`.
    pub async fn advise_corrupt_mutable(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        reason: &str,
    ) -> Result<(), GbsClientError> {
        self.advise_corrupt("mutable", si, shnum, reason).await
    }
}

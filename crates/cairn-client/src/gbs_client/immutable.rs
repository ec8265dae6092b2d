//! Immutable share requests: allocate, write (PATCH), abort, list, read, advise corrupt.

use super::*;

/// Answer to a PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// 201: the share is complete (the last missing byte arrived).
    pub finished: bool,
    /// Ranges of the share still missing (empty when finished).
    pub required: Vec<ByteRange>,
}

impl GbsClient {
    /// `POST /storage/v1/immutable/:si`: allocate buckets for `share_numbers` of
    /// `allocated_size` bytes each. Use one fresh upload secret per call
    /// ([`new_upload_secret`]) and the same one for its writes.
    pub async fn allocate_buckets(
        &self,
        si: &StorageIndex,
        lease: &LeaseSecrets,
        upload_secret: &[u8],
        share_numbers: &BTreeSet<ShareNum>,
        allocated_size: u64,
    ) -> Result<AllocateResponse, GbsClientError> {
        check_upload_secret(upload_secret)?;
        let secrets = Secrets {
            upload: Some(upload_secret.to_vec()),
            ..lease_secrets(lease)
        };
        let body = AllocateRequest {
            share_numbers: share_numbers.clone(),
            allocated_size,
        }
        .encode();
        let req = Req::new(
            Method::POST,
            format!("/storage/v1/immutable/{}", si_str(si)),
            false,
        )
        .secrets(&secrets)
        .cbor(body);
        let body = self.cbor(req, &[200]).await?;
        AllocateResponse::parse(&body).map_err(|e| self.malformed(format!("allocate: {e}")))
    }

    /// `PATCH /storage/v1/immutable/:si/:shnum` with `Content-Range: bytes a-b/*`. Not
    /// retried: a caller that retries must know the write is idempotent (identical bytes
    /// at the same offset are accepted again by the server).
    pub async fn write_share_chunk(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        upload_secret: &[u8],
        offset: u64,
        data: impl Into<Bytes>,
    ) -> Result<WriteResult, GbsClientError> {
        check_upload_secret(upload_secret)?;
        let data: Bytes = data.into();
        if data.is_empty() {
            return Err(GbsClientError::InvalidRequest("empty share write".into()));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| GbsClientError::InvalidRequest("write past 2^64".into()))?;
        let secrets = upload_secrets(upload_secret);
        let mut req = Req::new(
            Method::PATCH,
            format!("/storage/v1/immutable/{}/{shnum}", si_str(si)),
            false,
        )
        .secrets(&secrets)
        .header(
            hyper::header::CONTENT_RANGE,
            gbs::content_range_header(ByteRange { start: offset, end }),
        );
        req.body = data;
        let (status, body) = self.send(req, Expect::Cbor(&[200, 201])).await?;
        let required =
            gbs::parse_required_ranges(&body).map_err(|e| self.malformed(format!("write: {e}")))?;
        let finished = status == 201;
        if finished && !required.is_empty() {
            return Err(self.malformed("write: 201 (complete) but ranges still required".into()));
        }
        Ok(WriteResult { finished, required })
    }

    /// `PUT /storage/v1/immutable/:si/:shnum/abort`.
    pub async fn abort_upload(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        upload_secret: &[u8],
    ) -> Result<(), GbsClientError> {
        check_upload_secret(upload_secret)?;
        let path = format!("/storage/v1/immutable/{}/{shnum}/abort", si_str(si));
        self.put_empty(path, &upload_secrets(upload_secret), &[200])
            .await
    }

    /// A `PUT` of `path` with `secrets`, no body, answered by one of the `ok` statuses
    /// with none.
    pub(super) async fn put_empty(
        &self,
        path: String,
        secrets: &Secrets,
        ok: &'static [u16],
    ) -> Result<(), GbsClientError> {
        let req = Req::new(Method::PUT, path, false).secrets(secrets);
        self.send(req, Expect::Empty(ok)).await.map(|_| ())
    }

    /// `GET /storage/v1/immutable/:si/shares`: the finished shares (empty for an unknown SI).
    pub async fn list_immutable_shares(
        &self,
        si: &StorageIndex,
    ) -> Result<BTreeSet<ShareNum>, GbsClientError> {
        self.list_shares("immutable", si).await
    }

    /// `GET /storage/v1/immutable/:si/:shnum` with `Range`: up to `length` bytes at
    /// `offset` (fewer at the end of the share, none past it).
    pub async fn read_immutable(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, GbsClientError> {
        self.read_share("immutable", si, shnum, offset, length)
            .await
    }

    /// `POST /storage/v1/immutable/:si/:shnum/corrupt`.
    pub async fn advise_corrupt_immutable(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        reason: &str,
    ) -> Result<(), GbsClientError> {
        self.advise_corrupt("immutable", si, shnum, reason).await
    }
}

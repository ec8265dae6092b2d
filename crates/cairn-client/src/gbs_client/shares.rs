//! What immutable and mutable share requests share: share lists, ranged reads, corruption advisories.

use super::*;

impl GbsClient {
    pub(super) async fn list_shares(
        &self,
        kind: &str,
        si: &StorageIndex,
    ) -> Result<BTreeSet<ShareNum>, GbsClientError> {
        let body = self
            .cbor(
                Req::get(format!("/storage/v1/{kind}/{}/shares", si_str(si))),
                &[200],
            )
            .await?;
        gbs::parse_share_set(&body).map_err(|e| self.malformed(format!("list shares: {e}")))
    }

    pub(super) async fn read_share(
        &self,
        kind: &str,
        si: &StorageIndex,
        shnum: ShareNum,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, GbsClientError> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        let end = offset
            .checked_add(length)
            .filter(|&e| e < u64::MAX)
            .ok_or_else(|| GbsClientError::InvalidRequest("read past 2^64".into()))?;
        if length > self.inner.opts.max_cbor_response as u64 {
            return Err(GbsClientError::InvalidRequest(format!(
                "read of {length} bytes exceeds the response limit of {}",
                self.inner.opts.max_cbor_response
            )));
        }
        let range = ByteRange { start: offset, end };
        let req = Req::get(format!("/storage/v1/{kind}/{}/{shnum}", si_str(si)))
            .header(hyper::header::RANGE, gbs::range_header(range));
        self.send(req, Expect::Read(range)).await.map(|(_, b)| b)
    }

    /// `reason` cut (at a character boundary) to the longest a corruption advisory may
    /// carry, [`gbs::MAX_REASON_LEN`] bytes.
    pub fn fit_reason(mut reason: String) -> String {
        if reason.len() > gbs::MAX_REASON_LEN {
            let mut cut = gbs::MAX_REASON_LEN;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        reason
    }

    pub(super) async fn advise_corrupt(
        &self,
        kind: &str,
        si: &StorageIndex,
        shnum: ShareNum,
        reason: &str,
    ) -> Result<(), GbsClientError> {
        if reason.is_empty() || reason.len() > gbs::MAX_REASON_LEN {
            return Err(GbsClientError::InvalidRequest(format!(
                "reason must be 1..={} bytes",
                gbs::MAX_REASON_LEN
            )));
        }
        let req = Req::new(
            Method::POST,
            format!("/storage/v1/{kind}/{}/{shnum}/corrupt", si_str(si)),
            false,
        )
        .cbor(
            CorruptRequest {
                reason: reason.to_string(),
            }
            .encode(),
        );
        self.send(req, Expect::Empty(&[200])).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_reason_cuts_at_a_char_boundary() {
        assert_eq!(GbsClient::fit_reason("bad hash".into()), "bad hash");
        let long = format!("{}é", "x".repeat(gbs::MAX_REASON_LEN - 1));
        let cut = GbsClient::fit_reason(long);
        assert_eq!(cut, "x".repeat(gbs::MAX_REASON_LEN - 1));
        let exact = "y".repeat(gbs::MAX_REASON_LEN + 5);
        assert_eq!(GbsClient::fit_reason(exact).len(), gbs::MAX_REASON_LEN);
    }
}

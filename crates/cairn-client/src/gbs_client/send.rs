//! Sending one request: the request value, attempts with retries and per-attempt timeouts, status and body checks, bounded body reads.

use super::*;

/// What a successful response must look like.
pub(super) enum Expect {
    /// CBOR body with one of these statuses.
    Cbor(&'static [u16]),
    /// Any (small) body, ignored, with one of these statuses.
    Empty(&'static [u16]),
    /// A share read of this range.
    Read(ByteRange),
}

pub(super) struct Req {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, String)>,
    pub(super) body: Bytes,
    cbor_body: bool,
    idempotent: bool,
}

impl GbsClient {
    pub(super) async fn cbor(&self, req: Req, ok: &'static [u16]) -> Result<Bytes, GbsClientError> {
        self.send(req, Expect::Cbor(ok)).await.map(|(_, b)| b)
    }

    pub(super) fn malformed(&self, message: String) -> GbsClientError {
        GbsClientError::Malformed {
            server: self.inner.server.clone(),
            message,
        }
    }

    /// Send with retries (idempotent requests only).
    pub(super) async fn send(
        &self,
        req: Req,
        expect: Expect,
    ) -> Result<(u16, Bytes), GbsClientError> {
        let policy = self.inner.opts.retry;
        let mut retry = 0;
        loop {
            let result = self.attempt(&req, &expect).await;
            match result {
                Err(e) if req.idempotent && retry < policy.max_retries && e.is_transient() => {
                    tokio::time::sleep(policy.backoff(retry)).await;
                    retry += 1;
                    self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, req: &Req, expect: &Expect) -> Result<(u16, Bytes), GbsClientError> {
        let inner = &self.inner;
        inner.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let after = inner.opts.request_timeout;
        match tokio::time::timeout(after, self.attempt_inner(req, expect)).await {
            Ok(Ok((result, mut sender))) => {
                // The whole body was read: once the connection is ready for another request
                // (at once, normally), keep it; after `Connection: close`, drop it.
                if let Ok(Ok(())) =
                    tokio::time::timeout(Duration::from_secs(1), sender.ready()).await
                {
                    self.checkin(sender);
                }
                result
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(GbsClientError::Timeout {
                server: inner.server.clone(),
                after,
            }),
        }
    }

    /// Outer `Err`: the connection is unusable afterwards. `Ok((outcome, sender))`: the
    /// response was read completely (a success, or an error status with its whole body) and
    /// the connection may be reused.
    #[allow(clippy::type_complexity)]
    async fn attempt_inner(
        &self,
        req: &Req,
        expect: &Expect,
    ) -> Result<(Result<(u16, Bytes), GbsClientError>, Sender), GbsClientError> {
        let inner = &self.inner;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(hyper::header::HOST, inner.host_header.clone())
            .header(hyper::header::AUTHORIZATION, inner.auth.clone())
            .header(hyper::header::ACCEPT, CBOR_MIME_TYPE);
        if req.cbor_body {
            builder = builder.header(hyper::header::CONTENT_TYPE, CBOR_MIME_TYPE);
        }
        for (k, v) in &req.headers {
            builder = builder.header(k, v.as_str());
        }
        let mut request = builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| GbsClientError::InvalidRequest(format!("building request: {e}")))?;
        // A pooled connection the server has closed fails before the request is written;
        // then (and only then) the same request goes out on a fresh connection.
        let (sender, resp) = loop {
            let (mut sender, reused) = self.checkout().await?;
            match sender.try_send_request(request).await {
                Ok(resp) => break (sender, resp),
                Err(mut e) => match e.take_message() {
                    Some(back) if reused => request = back,
                    _ => return Err(self.classify_hyper(e.error())),
                },
            }
        };
        let resp: Response<Incoming> = resp;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        if !status.is_success() {
            let (bytes, complete) = read_prefix(&mut body, inner.opts.max_error_body).await;
            let message = match error_body_text(&bytes, 500) {
                m if m.is_empty() => status.canonical_reason().unwrap_or("").to_string(),
                m => m,
            };
            let e = GbsClientError::Status {
                server: inner.server.clone(),
                status: status.as_u16(),
                message,
            };
            return if complete {
                Ok((Err(e), sender))
            } else {
                Err(e)
            };
        }
        let code = status.as_u16();
        let result = self
            .check_body(expect, code, status, &headers, &mut body)
            .await?;
        Ok((Ok(result), sender))
    }

    async fn check_body(
        &self,
        expect: &Expect,
        code: u16,
        status: hyper::StatusCode,
        headers: &HeaderMap,
        body: &mut Incoming,
    ) -> Result<(u16, Bytes), GbsClientError> {
        let inner = &self.inner;
        match expect {
            Expect::Cbor(ok) => {
                if !ok.contains(&code) {
                    return Err(self.malformed(format!("unexpected status {status}")));
                }
                if !is_cbor_content_type(
                    headers
                        .get(hyper::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                ) {
                    return Err(self.malformed(format!(
                        "Content-Type {:?}, expected {CBOR_MIME_TYPE}",
                        headers.get(hyper::header::CONTENT_TYPE)
                    )));
                }
                let limit = inner.opts.max_cbor_response;
                let b = self.read_limited(body, headers, limit).await?;
                Ok((code, b))
            }
            Expect::Empty(ok) => {
                if !ok.contains(&code) {
                    return Err(self.malformed(format!("unexpected status {status}")));
                }
                // Drain a small body so the connection can be reused; ignore its content.
                let _ = self
                    .read_limited(body, headers, inner.opts.max_error_body)
                    .await?;
                Ok((code, Bytes::new()))
            }
            Expect::Read(range) => {
                let want = check_read_response(
                    *range,
                    code,
                    headers
                        .get(hyper::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                    headers
                        .get(hyper::header::CONTENT_RANGE)
                        .map(|v| v.as_bytes()),
                )
                .map_err(|m| self.malformed(m))?;
                let n = match want {
                    ReadBody::Empty => 0,
                    ReadBody::Exactly(n) => n as usize,
                };
                let b = self
                    .read_limited(body, headers, n)
                    .await
                    .map_err(|e| match e {
                        GbsClientError::TooLarge { .. } => self.malformed(format!(
                            "share read: body longer than Content-Range ({n} bytes)"
                        )),
                        other => other,
                    })?;
                if b.len() != n {
                    return Err(self.malformed(format!(
                        "share read: body has {} bytes, Content-Range says {n}",
                        b.len()
                    )));
                }
                Ok((code, b))
            }
        }
    }

    /// Read a whole body of at most `limit` bytes.
    async fn read_limited(
        &self,
        body: &mut Incoming,
        headers: &HeaderMap,
        limit: usize,
    ) -> Result<Bytes, GbsClientError> {
        let too_large = || GbsClientError::TooLarge {
            server: self.inner.server.clone(),
            limit,
        };
        if let Some(len) = headers.get(hyper::header::CONTENT_LENGTH) {
            let len: u64 = len
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| self.malformed("bad Content-Length".into()))?;
            if len > limit as u64 {
                return Err(too_large());
            }
        }
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.classify_hyper(&e))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }
}

pub(super) fn si_str(si: &StorageIndex) -> String {
    gbs::storage_index_to_string(si)
}

/// Read at most `limit` bytes of a body; `true` if that was all of it (else the rest is
/// left unread, and the connection must not be reused).
pub(super) async fn read_prefix(body: &mut Incoming, limit: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (buf, false);
        };
        if let Ok(data) = frame.into_data() {
            let room = limit - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                return (buf, false);
            }
            buf.extend_from_slice(&data);
        }
    }
    (buf, true)
}

impl Req {
    pub(super) fn new(method: Method, path: String, idempotent: bool) -> Req {
        Req {
            method,
            path,
            headers: Vec::new(),
            body: Bytes::new(),
            cbor_body: false,
            idempotent,
        }
    }
    pub(super) fn get(path: String) -> Req {
        Req::new(Method::GET, path, true)
    }
    pub(super) fn header(mut self, k: HeaderName, v: String) -> Req {
        self.headers.push((k, v));
        self
    }
    pub(super) fn secrets(mut self, s: &Secrets) -> Req {
        for v in s.header_values() {
            self.headers
                .push((HeaderName::from_static("x-tahoe-authorization"), v));
        }
        self
    }
    pub(super) fn cbor(mut self, body: Vec<u8>) -> Req {
        self.body = Bytes::from(body);
        self.cbor_body = true;
        self
    }
}

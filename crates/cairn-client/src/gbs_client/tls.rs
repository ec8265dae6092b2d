//! TLS pinned by SPKI hash, as Tahoe's client: no CA, no hostname check, no SNI.

use super::*;

#[derive(Debug)]
pub(super) struct PinMismatchDetail {
    pub(super) got: String,
}

impl std::fmt::Display for PinMismatchDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SPKI hash mismatch (got {})", self.got)
    }
}

impl std::error::Error for PinMismatchDetail {}

/// The TLS client configuration of a storage-protocol connection, as Tahoe's client makes
/// it: TLS 1.3, no SNI, ALPN `http/1.1`, and the server's certificate accepted only if the
/// hash of its SubjectPublicKeyInfo equals `spki_hash` (the NURL's pin; nothing else about
/// the certificate is checked).
pub fn pinned_tls_config(spki_hash: &str) -> Result<rustls::ClientConfig, GbsClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| GbsClientError::Unsupported(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpkiPin {
            expected: spki_hash.to_string(),
            provider,
        }))
        .with_no_client_auth();
    tls.enable_sni = false;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// `_TLSContextFactory`'s verification: the certificate's SPKI hash must equal the pin;
/// nothing else about the certificate is checked.
#[derive(Debug)]
pub(super) struct SpkiPin {
    expected: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for SpkiPin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = spki_from_cert(end_entity.as_ref()).map(spki_hash_of);
        match got {
            Some(h)
                if cairn_core::storage::gbs::constant_time_eq(
                    h.as_bytes(),
                    self.expected.as_bytes(),
                ) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatchDetail {
                    got: other.unwrap_or_else(|| "<no SubjectPublicKeyInfo>".into()),
                })),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Against the (pinned) key itself: webpki refuses Tahoe's X.509 v1 certificates.
        let spki = spki_from_cert(cert.as_ref())
            .ok_or_else(|| rustls::Error::General("no SPKI in certificate".into()))?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &rustls::pki_types::SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

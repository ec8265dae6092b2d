//! A node's identity, kept in its directory as Tahoe-LAFS 1.20 keeps it:
//!
//! | file | content |
//! |---|---|
//! | `private/node.pem` | TLS certificate + private key, PEM (Foolscap's Tub certificate: self-signed RSA-2048, CN `newpb_thingy`, serial 1) |
//! | `private/node.privkey` | `priv-v0-<b32 ed25519 seed>` |
//! | `node.pubkey` | `pub-v0-<b32 ed25519 public key>` |
//! | `private/storage.furl` | `pb://<tubid>@<tub.location>/<swissnum>` |
//! | `permutation-seed` | `permutation-seed-base32` of the announcement |
//!
//! Derived: tubid = b32(SHA-1(cert DER)), SPKI hash = urlsafe-b64(SHA-256(SPKI DER)) without
//! padding, NURL = `pb://<spki hash>@<host>:<port>/<swissnum>#v=1` per tcp hint, server id =
//! `v0-<b32 ed25519 public key>`. Existing files are never rewritten, so a node keeps its
//! identity across restarts, and a node directory Tahoe made keeps Tahoe's.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::base32;
use rand::RngCore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha1::Digest;

use crate::config::{LocationHint, NodeConfig};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("TLS certificate (private/node.pem): {0}")]
    Cert(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Everything a storage node presents to clients.
pub struct NodeIdentity {
    pub cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
    /// SHA-1 of the certificate DER: Foolscap's tubid, the lease and write-enabler seed.
    pub tubid: [u8; 20],
    /// urlsafe-b64(SHA-256(SPKI)), unpadded: what clients pin.
    pub spki_hash: String,
    /// The storage swissnum (ASCII, from `private/storage.furl`).
    pub swissnum: String,
    /// The full storage FURL.
    pub storage_furl: String,
    /// `v0-<52 b32 chars>`.
    pub server_id: String,
    /// The announcement's `permutation-seed-base32`.
    pub permutation_seed_base32: String,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("tubid", &base32::encode(&self.tubid))
            .field("spki_hash", &self.spki_hash)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Load the identity of a node directory, creating whatever is missing (as Tahoe does on
    /// first start): the TLS certificate, the Ed25519 key, the storage FURL, the permutation
    /// seed. `storage_dir` decides the permutation seed of a node that already holds shares
    /// but has none recorded (Tahoe then uses its tubid).
    pub fn load_or_create(config: &NodeConfig) -> Result<NodeIdentity, IdentityError> {
        let basedir = &config.basedir;
        let private = basedir.join("private");
        fs::create_dir_all(&private).map_err(io_err(&private))?;
        set_mode(&private, 0o700);

        // TLS certificate and key.
        let pem_path = private.join("node.pem");
        if !pem_path.exists() {
            let pem = make_node_pem()?;
            write_new_file(&pem_path, pem.as_bytes(), 0o600)?;
        }
        let pem = fs::read(&pem_path).map_err(io_err(&pem_path))?;
        let cert_der = CertificateDer::from_pem_slice(&pem).map_err(|e| IdentityError::Bad {
            path: pem_path.clone(),
            reason: format!("no certificate: {e}"),
        })?;
        let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| IdentityError::Bad {
            path: pem_path.clone(),
            reason: format!("no private key: {e}"),
        })?;
        let tubid: [u8; 20] = sha1::Sha1::digest(cert_der.as_ref()).into();
        let spki = spki_from_cert(cert_der.as_ref()).ok_or_else(|| IdentityError::Bad {
            path: pem_path.clone(),
            reason: "cannot find the SubjectPublicKeyInfo in the certificate".into(),
        })?;
        let spki_hash = spki_hash_of(spki);

        // Ed25519 node key.
        let privkey_path = private.join("node.privkey");
        if !privkey_path.exists() {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let text = format!("priv-v0-{}\n", base32::encode(&seed));
            write_new_file(&privkey_path, text.as_bytes(), 0o600)?;
        }
        let text = fs::read_to_string(&privkey_path).map_err(io_err(&privkey_path))?;
        let seed: [u8; 32] = text
            .trim()
            .strip_prefix("priv-v0-")
            .and_then(|b| base32::decode_array::<32>(b).ok())
            .ok_or_else(|| IdentityError::Bad {
                path: privkey_path.clone(),
                reason: "expected priv-v0-<base32 ed25519 key>".into(),
            })?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let pub_b32 = base32::encode(signing.verifying_key().as_bytes());
        let pubkey_path = basedir.join("node.pubkey");
        let pub_text = format!("pub-v0-{pub_b32}\n");
        if fs::read_to_string(&pubkey_path).ok().as_deref() != Some(pub_text.as_str()) {
            write_replace(&pubkey_path, pub_text.as_bytes(), 0o644)?;
        }
        let server_id = format!("v0-{pub_b32}");

        // Storage FURL (its swissnum is the HTTP swissnum).
        let furl_path = private.join("storage.furl");
        let tubid_b32 = base32::encode(&tubid);
        let existing = fs::read_to_string(&furl_path)
            .ok()
            .map(|s| s.trim().to_string());
        let swissnum = match existing.as_deref().and_then(parse_furl) {
            Some((t, _, swiss)) => {
                if t != tubid_b32 {
                    return Err(IdentityError::Bad {
                        path: furl_path,
                        reason: format!(
                            "the FURL's tubid {t} is not this node's ({tubid_b32}); node.pem was replaced?"
                        ),
                    });
                }
                swiss
            }
            None => {
                let mut b = [0u8; 20];
                rand::rngs::OsRng.fill_bytes(&mut b);
                base32::encode(&b)
            }
        };
        let storage_furl = format!("pb://{tubid_b32}@{}/{swissnum}", config.location);
        if existing.as_deref() != Some(storage_furl.as_str()) {
            write_replace(&furl_path, format!("{storage_furl}\n").as_bytes(), 0o600)?;
        }

        // Permutation seed (`_Client._init_permutation_seed`).
        let seed_path = basedir.join("permutation-seed");
        let permutation_seed_base32 = match fs::read_to_string(&seed_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let seed = if have_shares(&config.storage_dir) {
                    tubid_b32.clone()
                } else {
                    base32::encode(pub_b32.as_bytes())
                };
                write_replace(&seed_path, format!("{seed}\n").as_bytes(), 0o644)?;
                seed
            }
        };

        Ok(NodeIdentity {
            cert_der,
            key_der,
            tubid,
            spki_hash,
            swissnum,
            storage_furl,
            server_id,
            permutation_seed_base32,
        })
    }

    /// One NURL per `tcp:`/`tor:` location hint (`build_nurl`).
    pub fn nurls(&self, hints: &[LocationHint]) -> Vec<String> {
        hints
            .iter()
            .filter_map(|h| match h {
                LocationHint::Tcp { host, port } => Some(("pb", host, port)),
                LocationHint::Tor { host, port } => Some(("pb+tor", host, port)),
                LocationHint::Other(_) => None,
            })
            .map(|(scheme, host, port)| {
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                format!(
                    "{scheme}://{}@{host}:{port}/{}#v=1",
                    self.spki_hash, self.swissnum
                )
            })
            .collect()
    }

    /// The TLS server configuration: this certificate alone, no client authentication.
    ///
    /// The certificate is served through a fixed resolver rather than `with_single_cert`,
    /// because Tahoe's Foolscap certificates are X.509 **version 1**, which rustls' key/cert
    /// consistency check refuses; clients pin the SPKI hash and never look at the version.
    pub fn tls_server_config(&self) -> Result<rustls::ServerConfig, IdentityError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing_key = provider
            .key_provider
            .load_private_key(self.key_der.clone_key())
            .map_err(|e| {
                IdentityError::Cert(format!("loading the private key of private/node.pem: {e}"))
            })?;
        let certified = Arc::new(rustls::sign::CertifiedKey::new(
            vec![self.cert_der.clone()],
            signing_key,
        ));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| IdentityError::Cert(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedCert(certified)));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// The entry for a Tahoe client's `private/servers.yaml`, one line, ready to paste under
    /// `storage:`: `<server id>: {ann: {...}}`.
    pub fn announcement_yaml(&self, nickname: &str, hints: &[LocationHint]) -> String {
        let nurls: Vec<String> = self.nurls(hints).iter().map(|n| yaml_quote(n)).collect();
        format!(
            "{}: {{ann: {{anonymous-storage-FURL: {}, anonymous-storage-NURLs: [{}], nickname: {}, permutation-seed-base32: {}}}}}",
            self.server_id,
            yaml_quote(&self.storage_furl),
            nurls.join(", "),
            yaml_quote(nickname),
            yaml_quote(&self.permutation_seed_base32),
        )
    }
}

/// Serves one certificate to every client (Tahoe's clients send no SNI).
#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Where `cairn run` writes the announcement for operators (same text as
/// `cairn storage announcement`).
pub fn announcement_file(basedir: &Path) -> PathBuf {
    basedir.join("storage-announcement.yaml")
}

/// Make a Foolscap-style node.pem: self-signed RSA-2048 certificate (CN `newpb_thingy`,
/// serial 1, sha256WithRSAEncryption) followed by its PKCS#8 private key.
pub fn make_node_pem() -> Result<String, IdentityError> {
    use rsa::pkcs8::EncodePrivateKey;
    let cert_err = |e: &dyn std::fmt::Display| IdentityError::Cert(e.to_string());
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| cert_err(&e))?;
    let der = key.to_pkcs8_der().map_err(|e| cert_err(&e))?;
    let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| cert_err(&e))?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "newpb_thingy");
    params.distinguished_name = dn;
    params.serial_number = Some(rcgen::SerialNumber::from(1u64));
    let cert = params.self_signed(&key_pair).map_err(|e| cert_err(&e))?;
    Ok(format!("{}{}", cert.pem(), key_pair.serialize_pem()))
}

// SPKI extraction and hashing are pure and shared with the client.
pub use cairn_core::storage::gbs_client_support::{cert_spki_hash, spki_from_cert, spki_hash_of};

/// `pb://TUBID@HINTS/SWISSNUM` → (tubid, hints, swissnum).
pub fn parse_furl(furl: &str) -> Option<(String, String, String)> {
    let rest = furl.strip_prefix("pb://")?;
    let (tubid, rest) = rest.split_once('@')?;
    let (hints, swiss) = rest.rsplit_once('/')?;
    if tubid.is_empty() || swiss.is_empty() {
        return None;
    }
    Some((tubid.to_string(), hints.to_string(), swiss.to_string()))
}

/// Does the storage directory already hold shares (`StorageServer.have_shares`)?
fn have_shares(storage_dir: &Path) -> bool {
    match fs::read_dir(storage_dir.join("shares")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .any(|e| e.file_name() != "incoming"),
        Err(_) => false,
    }
}

/// A YAML (and JSON) double-quoted string.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// Create a file that must not exist yet, durably (write temp, fsync, rename, fsync dir).
fn write_new_file(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    write_replace(path, data, mode)
}

/// Replace a file atomically and durably.
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        set_mode(&tmp, mode);
        f.write_all(data).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_pem_is_foolscap_shaped() {
        let pem = make_node_pem().unwrap();
        let cert = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let _key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        let spki = spki_from_cert(cert.as_ref()).unwrap();
        // RSA SPKI: SEQUENCE { SEQUENCE { rsaEncryption OID ...
        assert_eq!(spki[0], 0x30);
        assert!(spki
            .windows(9)
            .any(|w| w == [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]));
        assert_eq!(spki_hash_of(spki).len(), 43);
    }

    #[test]
    fn furl_parse() {
        let (t, h, s) = parse_furl("pb://abc@tcp:h:1,tcp:g:2/swiss").unwrap();
        assert_eq!(
            (t.as_str(), h.as_str(), s.as_str()),
            ("abc", "tcp:h:1,tcp:g:2", "swiss")
        );
        assert!(parse_furl("http://x").is_none());
    }
}

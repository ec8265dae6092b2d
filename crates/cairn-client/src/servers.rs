//! Tahoe's `private/servers.yaml`: static storage-server announcements (compat map §5.4–5.6).
//!
//! ```yaml
//! storage:
//!   v0-<52 b32 chars>:                  # server id
//!     ann:
//!       anonymous-storage-FURL: pb://<tubid>@tcp:host:port/<swissnum>
//!       anonymous-storage-NURLs: ["pb://<spki hash>@host:port/<swissnum>#v=1"]
//!       permutation-seed-base32: <b32>
//!       nickname: optional
//! ```
//!
//! Each entry is parsed as `StorageFarmBroker._make_storage_server` and
//! `storage_client._parse_announcement` do:
//!
//! - **tubid** (the lease seed and the write-enabler seed, also for HTTP servers): the
//!   FURL must match `pb://(\w+)@`; the tubid text is lower-cased and base32-decoded. cairn
//!   also requires it to be 20 bytes (32 characters), which every real tubid is.
//! - **permutation seed**: `permutation-seed-base32` decoded if present (for a fresh Tahoe
//!   server that is the 52 ASCII characters of its key, *not* the key bytes); else, for a
//!   server id `v0-` + 52 alphanumerics, the base32-decoded key (32 bytes); else
//!   SHA-256(server id).
//! - An entry without a FURL, or whose FURL or seed does not decode, is dropped by Tahoe
//!   silently; cairn drops it too and says why in [`ServersFile::skipped`]. Entries without
//!   NURLs (Foolscap-only servers) are skipped as well: cairn speaks HTTP only.
//!
//! Servers come out sorted by server id (Tahoe's processing order); the per-file order is
//! [`StaticServer::permuted`].

use std::path::Path;

use cairn_core::base32;
use cairn_core::storage::gbs_client_support::{Nurl, NurlError};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

/// One usable static server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticServer {
    /// The key under `storage:` (usually `v0-<b32 ed25519 key>`).
    pub server_id: String,
    /// `nickname`, or empty.
    pub nickname: String,
    /// `anonymous-storage-FURL` (parsed for its tubid, never dialled).
    pub furl: String,
    /// The valid NURLs, in file order (Tor ones included; the client refuses them).
    pub nurls: Vec<Nurl>,
    /// NURLs that did not parse, with the reason.
    pub invalid_nurls: Vec<(String, NurlError)>,
    /// Foolscap tubid from the FURL: lease seed and write-enabler seed.
    pub tubid: [u8; 20],
    /// Bytes hashed after the storage index to order servers per file.
    pub permutation_seed: Vec<u8>,
}

impl StaticServer {
    /// Seed of the per-server lease secrets (`get_lease_seed`; the tubid).
    pub fn lease_seed(&self) -> &[u8; 20] {
        &self.tubid
    }

    /// Seed of the per-server write enabler (`get_foolscap_write_enabler_seed`; the tubid).
    pub fn write_enabler_seed(&self) -> &[u8; 20] {
        &self.tubid
    }

    /// Tahoe's short name: 8 characters of the id after `v0-`.
    pub fn short_name(&self) -> &str {
        let s = self
            .server_id
            .strip_prefix("v0-")
            .unwrap_or(&self.server_id);
        s.get(..8).unwrap_or(s)
    }

    /// Order servers for the file with this storage index, as Tahoe 1.20 does
    /// (`get_servers_for_psi`; `peers.preferred` has no effect in Tahoe 1.20).
    pub fn permuted<'a>(
        storage_index: &[u8],
        servers: &'a [StaticServer],
    ) -> Vec<&'a StaticServer> {
        let seeds: Vec<&[u8]> = servers
            .iter()
            .map(|s| s.permutation_seed.as_slice())
            .collect();
        cairn_core::permute::permuted_indices(storage_index, &seeds)
            .into_iter()
            .map(|i| &servers[i])
            .collect()
    }
}

/// Why one entry was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    #[error("server id is not a string")]
    ServerIdNotString,
    #[error("entry has no `ann` mapping")]
    NoAnn,
    #[error("announcement has no anonymous-storage-FURL (Tahoe drops such entries)")]
    NoFurl,
    #[error("anonymous-storage-FURL {0:?} does not match pb://<tubid>@…")]
    BadFurl(String),
    #[error("tubid {0:?} is not 32 characters of base32")]
    BadTubid(String),
    #[error("permutation-seed-base32 is not base32: {0:?}")]
    BadSeed(String),
    #[error("server id {0:?} looks like v0-<key> but the key is not base32")]
    BadServerIdKey(String),
    #[error("anonymous-storage-NURLs is not a list of strings")]
    BadNurlList,
    #[error("no usable NURL (Foolscap-only server, or every NURL invalid)")]
    NoNurls,
}

/// An entry that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedServer {
    /// The server id (or its YAML text if it is not a string).
    pub server_id: String,
    pub reason: AnnouncementError,
}

/// A parsed `servers.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServersFile {
    /// Usable servers, sorted by server id.
    pub servers: Vec<StaticServer>,
    pub skipped: Vec<SkippedServer>,
}

/// The file as a whole could not be used (Tahoe refuses to start on these).
#[derive(Debug, thiserror::Error)]
pub enum ServersYamlError {
    #[error("servers.yaml: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("servers.yaml: {0}")]
    Shape(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Parse the text of a `servers.yaml`. An empty document or one without `storage:` has no
/// servers.
pub fn parse_servers_yaml(text: &str) -> Result<ServersFile, ServersYamlError> {
    let doc: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_yaml_ng::from_str(text)?
    };
    let storage = match doc {
        Value::Null => return Ok(ServersFile::default()),
        Value::Mapping(mut m) => match m.remove("storage") {
            None => return Ok(ServersFile::default()),
            Some(Value::Mapping(s)) => s,
            Some(other) => {
                return Err(ServersYamlError::Shape(format!(
                    "`storage` must be a mapping, not {}",
                    kind(&other)
                )))
            }
        },
        other => {
            return Err(ServersYamlError::Shape(format!(
                "top level must be a mapping, not {}",
                kind(&other)
            )))
        }
    };
    let mut out = ServersFile::default();
    for (key, entry) in storage {
        let Value::String(server_id) = key else {
            let text = serde_yaml_ng::to_string(&key)
                .unwrap_or_default()
                .trim()
                .to_string();
            out.skipped.push(SkippedServer {
                server_id: text,
                reason: AnnouncementError::ServerIdNotString,
            });
            continue;
        };
        let ann = match entry {
            Value::Mapping(mut m) => m.remove("ann"),
            _ => None,
        };
        let result = match ann {
            Some(Value::Mapping(ann)) => parse_announcement(&server_id, &ann),
            _ => Err(AnnouncementError::NoAnn),
        };
        match result {
            Ok(s) => out.servers.push(s),
            Err(reason) => out.skipped.push(SkippedServer { server_id, reason }),
        }
    }
    out.servers.sort_by(|a, b| a.server_id.cmp(&b.server_id));
    out.skipped.sort_by(|a, b| a.server_id.cmp(&b.server_id));
    Ok(out)
}

/// Read and parse `path`; a missing file has no servers (as in Tahoe).
pub fn load_servers_yaml(path: &Path) -> Result<ServersFile, ServersYamlError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_servers_yaml(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServersFile::default()),
        Err(source) => Err(ServersYamlError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// One announcement (`_parse_announcement` plus the NURL list).
pub fn parse_announcement(
    server_id: &str,
    ann: &serde_yaml_ng::Mapping,
) -> Result<StaticServer, AnnouncementError> {
    let furl = match ann.get("anonymous-storage-FURL") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(AnnouncementError::BadFurl("<not a string>".into())),
        None => return Err(AnnouncementError::NoFurl),
    };
    let tubid = tubid_from_furl(&furl)?;
    let seed = match ann.get("permutation-seed-base32") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => return Err(AnnouncementError::BadSeed(format!("<{}>", kind(other)))),
    };
    let permutation_seed = permutation_seed(server_id, seed)?;
    let nickname = match ann.get("nickname") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    let mut nurls = Vec::new();
    let mut invalid_nurls = Vec::new();
    match ann.get("anonymous-storage-NURLs") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for it in items {
                let Value::String(text) = it else {
                    return Err(AnnouncementError::BadNurlList);
                };
                match Nurl::parse(text) {
                    Ok(n) => nurls.push(n),
                    Err(e) => invalid_nurls.push((text.clone(), e)),
                }
            }
        }
        Some(_) => return Err(AnnouncementError::BadNurlList),
    }
    if nurls.is_empty() {
        return Err(AnnouncementError::NoNurls);
    }
    Ok(StaticServer {
        server_id: server_id.to_string(),
        nickname,
        furl,
        nurls,
        invalid_nurls,
        tubid,
        permutation_seed,
    })
}

/// The tubid of a FURL (`re.match(br'pb://(\w+)@', furl)`, lower-cased, `base32.a2b`).
pub fn tubid_from_furl(furl: &str) -> Result<[u8; 20], AnnouncementError> {
    let rest = furl
        .strip_prefix("pb://")
        .ok_or_else(|| AnnouncementError::BadFurl(furl.to_string()))?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if end == 0 || !rest[end..].starts_with('@') {
        return Err(AnnouncementError::BadFurl(furl.to_string()));
    }
    let text = rest[..end].to_ascii_lowercase();
    let bytes = base32::decode_tahoe_lenient(&text)
        .map_err(|_| AnnouncementError::BadTubid(text.clone()))?;
    bytes
        .try_into()
        .map_err(|_| AnnouncementError::BadTubid(text))
}

/// The permutation seed (`_parse_announcement`): the announced `permutation-seed-base32`,
/// else the key bytes of a `v0-` server id, else SHA-256(server id).
pub fn permutation_seed(
    server_id: &str,
    announced_b32: Option<&str>,
) -> Result<Vec<u8>, AnnouncementError> {
    if let Some(s) = announced_b32 {
        return base32::decode_tahoe_lenient(s)
            .map_err(|_| AnnouncementError::BadSeed(s.to_string()));
    }
    if let Some(key) = server_id.strip_prefix("v0-") {
        if key.len() == 52 && key.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return base32::decode_tahoe_lenient(key)
                .map_err(|_| AnnouncementError::BadServerIdKey(server_id.to_string()));
        }
    }
    Ok(Sha256::digest(server_id.as_bytes()).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_tubids() {
        let key = "a".repeat(52);
        assert_eq!(
            permutation_seed(&format!("v0-{key}"), None).unwrap(),
            vec![0u8; 32]
        );
        assert_eq!(
            permutation_seed("v0-short", None).unwrap(),
            Sha256::digest(b"v0-short").to_vec()
        );
        assert_eq!(permutation_seed("x", Some("")).unwrap(), Vec::<u8>::new());
        assert!(permutation_seed("x", Some("ABC")).is_err());
        assert!(permutation_seed(&format!("v0-{}", "A".repeat(52)), None).is_err());
        let t = "a".repeat(32);
        assert_eq!(
            tubid_from_furl(&format!("pb://{}@tcp:h:1/s", t.to_uppercase())).unwrap(),
            [0u8; 20]
        );
        assert!(tubid_from_furl("pb://@tcp:h:1/s").is_err());
        assert!(tubid_from_furl("pb://abc").is_err());
        assert!(tubid_from_furl(&format!("pb://{}@x", "a".repeat(30))).is_err());
    }
}

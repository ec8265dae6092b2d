//! A node's configuration as Tahoe-LAFS 1.20 reads it: `DIR/tahoe.cfg` (the storage settings
//! come from [`crate::config::NodeConfig`]; this module adds the client's and the web
//! gateway's keys) and the secrets in `DIR/private/`.
//!
//! | key | Tahoe's default | meaning |
//! |---|---|---|
//! | `[client] shares.needed` | 3 | k: shares needed to read a file |
//! | `[client] shares.happy` | 7 | servers-of-happiness threshold of an upload |
//! | `[client] shares.total` | 10 | N: shares made per file |
//! | `[client] shares._max_immutable_segment_size_for_testing` | 1048576 | maximum segment size |
//! | `[node] web.port` | empty | the gateway's endpoint (`tcp:3456:interface=127.0.0.1`); empty: none |
//! | `[node] tempdir` | `tmp` | where uploads are spooled |
//! | `[storage] enabled` | true | run the storage server too |
//!
//! Secrets, each created on first use exactly as Tahoe creates it (base32 of 16 random bytes
//! and a newline) and read back as Tahoe reads it (whitespace stripped, `base32.a2b`):
//! `private/convergence` (the convergence secret: the same file with the same secret and
//! parameters gets the same cap from Tahoe and cairn) and `private/secret` (the lease secret).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Ini, Listener, NodeConfig};
use cairn_core::chk::{EncodingParams, DEFAULT_MAX_SEGMENT_SIZE};

/// Errors reading or creating a node's configuration.
#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadSecret { path: PathBuf, reason: String },
}

fn bad(section: &str, key: &str, value: &str, reason: impl Into<String>) -> NodeConfigError {
    NodeConfigError::Config(ConfigError::Bad {
        section: section.into(),
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    })
}

/// `[node] web.port`: the endpoint string as written, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPort {
    /// The configured text (`tcp:3456:interface=127.0.0.1`).
    pub spec: String,
    pub listener: Listener,
}

impl WebPort {
    /// Parse a Twisted server endpoint string as Tahoe's `web.port` takes it: `tcp:PORT`,
    /// `tcp:PORT:interface=ADDR`, `tcp:port=PORT:interface=ADDR`, or a bare `PORT` (Tahoe
    /// prefixes `tcp:`). `tcp:0` picks a free port at each start. TLS (`ssl:`) and Unix
    /// sockets are refused with a clear reason.
    pub fn parse(spec: &str) -> Result<WebPort, String> {
        let spec = spec.trim();
        if spec.contains(',') {
            return Err("web.port takes one endpoint (no commas)".into());
        }
        let listener = parse_tcp_endpoint(spec).map_err(|r| {
            if spec.starts_with("ssl:") || spec.starts_with("unix:") {
                format!("{r}; the cairn gateway serves plain HTTP on tcp endpoints only")
            } else {
                r
            }
        })?;
        Ok(WebPort {
            spec: spec.to_string(),
            listener,
        })
    }

    /// `tcp:PORT:interface=ADDR` with IPv6 colons escaped as Twisted wants them.
    pub fn format(interface: IpAddr, port: u16) -> String {
        let iface = match interface {
            IpAddr::V6(v6) => v6.to_string().replace(':', "\\:"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        format!("tcp:{port}:interface={iface}")
    }
}

/// Parse a Twisted `tcp` server endpoint (`tcp:PORT[:interface=ADDR][:backlog=N]`, keyword
/// `port=`, or a bare `PORT`), honouring backslash escapes so an IPv6 interface can be
/// written `interface=\:\:1` as Twisted requires.
fn parse_tcp_endpoint(ep: &str) -> Result<Listener, String> {
    // Split on unescaped colons; `\x` stands for `x`.
    let mut parts = vec![String::new()];
    let mut chars = ep.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => {
                    if let Some(p) = parts.last_mut() {
                        p.push(n)
                    }
                }
                None => return Err(format!("{ep:?} ends with a backslash")),
            },
            ':' => parts.push(String::new()),
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c)
                }
            }
        }
    }
    let mut it = parts.into_iter();
    let kind = it.next().unwrap_or_default();
    let mut port: Option<u16> = None;
    if kind != "tcp" {
        if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_digit()) {
            port = Some(kind.parse().map_err(|_| format!("bad port in {ep:?}"))?);
        } else {
            return Err(format!(
                "unsupported endpoint {ep:?} (cairn listens on tcp only)"
            ));
        }
    }
    let mut interface = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    for a in it {
        if let Some(v) = a.strip_prefix("interface=") {
            interface = v
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("bad interface {v:?} in {ep:?}"))?;
        } else if let Some(v) = a.strip_prefix("port=") {
            port = Some(v.parse().map_err(|_| format!("bad port in {ep:?}"))?);
        } else if let Some(v) = a.strip_prefix("backlog=") {
            v.parse::<u32>()
                .map_err(|_| format!("bad backlog in {ep:?}"))?;
        } else if port.is_none() {
            port = Some(a.parse().map_err(|_| format!("bad port in {ep:?}"))?);
        } else {
            return Err(format!("unsupported endpoint argument {a:?} in {ep:?}"));
        }
    }
    let port = port.ok_or_else(|| format!("no port in {ep:?}"))?;
    Ok(Listener { interface, port })
}

/// What a node runs with: the storage settings, the client's encoding parameters, the web
/// gateway's endpoint.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub basedir: PathBuf,
    /// The storage server's view of the same `tahoe.cfg` (nickname, `[storage]`, `tub.port`).
    pub node: NodeConfig,
    /// `[client] shares.*`, with the maximum segment size (Tahoe's default 1 MiB unless
    /// `shares._max_immutable_segment_size_for_testing` says otherwise).
    pub params: EncodingParams,
    /// `[node] web.port`; `None` when empty (no gateway).
    pub web_port: Option<WebPort>,
    /// `[node] tempdir` (default `DIR/tmp`), where the gateway spools uploads.
    pub tempdir: PathBuf,
}

impl ClientConfig {
    /// Read `basedir/tahoe.cfg`.
    pub fn load(basedir: &Path) -> Result<ClientConfig, NodeConfigError> {
        ClientConfig::from_ini(basedir, Ini::read(basedir)?)
    }

    pub fn from_ini(basedir: &Path, ini: Ini) -> Result<ClientConfig, NodeConfigError> {
        let node = NodeConfig::from_ini(basedir, ini)?;
        let ini = &node.ini;
        let count = |key: &str, default: u16| -> Result<u16, NodeConfigError> {
            match ini.get("client", key) {
                None => Ok(default),
                // Tahoe: int(value); an empty value is an error there too.
                Some(v) => v
                    .trim()
                    .parse::<u16>()
                    .map_err(|_| bad("client", key, v, "not a whole number from 1 to 256")),
            }
        };
        let needed = count("shares.needed", 3)?;
        let happy = count("shares.happy", 7)?;
        let total = count("shares.total", 10)?;
        let seg_key = "shares._max_immutable_segment_size_for_testing";
        let max_segment_size = match ini.get("client", seg_key) {
            None => DEFAULT_MAX_SEGMENT_SIZE,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(bad(
                        "client",
                        seg_key,
                        v,
                        "not a positive whole number of bytes",
                    ))
                }
            },
        };
        let show = |k: &str| ini.get("client", k).unwrap_or("(default)").to_string();
        let params_text = format!(
            "needed={} happy={} total={}",
            show("shares.needed"),
            show("shares.happy"),
            show("shares.total")
        );
        let params_err = |reason: String| {
            NodeConfigError::Config(ConfigError::Bad {
                section: "client".into(),
                key: "shares.needed/shares.happy/shares.total".into(),
                value: params_text.clone(),
                reason,
            })
        };
        if needed == 0 {
            return Err(params_err("shares.needed must be at least 1".into()));
        }
        if total > 256 {
            return Err(params_err(format!(
                "shares.total = {total}: at most 256 shares per file"
            )));
        }
        if needed > total {
            return Err(params_err(format!(
                "shares.needed = {needed} is more than shares.total = {total}; need 1 <= needed <= total <= 256"
            )));
        }
        if happy == 0 {
            return Err(params_err("shares.happy must be at least 1".into()));
        }
        if happy > total {
            return Err(params_err(format!(
                "shares.happy = {happy} is more than shares.total = {total}: an upload can never place shares on more servers than it has shares"
            )));
        }
        let params = EncodingParams::new(needed, happy, total, max_segment_size)
            .map_err(|e| params_err(e.to_string()))?;

        let web_port = match ini.get("node", "web.port").map(str::trim) {
            None | Some("") => None,
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(WebPort::parse(v).map_err(|r| bad("node", "web.port", v, r))?),
        };
        let tempdir = match ini.get_nonempty("node", "tempdir") {
            Some(t) => {
                let p = PathBuf::from(t);
                if p.is_absolute() {
                    p
                } else {
                    basedir.join(p)
                }
            }
            None => basedir.join("tmp"),
        };
        Ok(ClientConfig {
            basedir: basedir.to_path_buf(),
            node,
            params,
            web_port,
            tempdir,
        })
    }

    /// `basedir/private/<name>`
    pub fn private_path(&self, name: &str) -> PathBuf {
        self.basedir.join("private").join(name)
    }
}

/// A node's secrets (`private/convergence`, `private/secret`).
#[derive(Clone)]
pub struct Secrets {
    /// The convergence secret (16 bytes when Tahoe or cairn made it; any length is accepted,
    /// as Tahoe accepts any base32 text there).
    pub convergence: Vec<u8>,
    /// The lease secret Tahoe derives lease renew/cancel secrets from.
    pub lease: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Read both secrets, creating each missing one as Tahoe does.
    pub fn load_or_create(basedir: &Path) -> Result<Secrets, NodeConfigError> {
        Ok(Secrets {
            convergence: load_or_create_secret(basedir, "convergence")?,
            lease: load_or_create_secret(basedir, "secret")?,
        })
    }
}

/// Tahoe's `_make_secret()`: base32 of 16 random bytes, and a newline.
pub fn make_secret_text() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{}\n", cairn_core::base32::encode(&bytes))
}

/// `get_or_create_private_config(name, _make_secret)` followed by `base32.a2b`: read
/// `basedir/private/<name>`, or create it (mode 0600 inside the 0700 `private/`) if missing.
pub fn load_or_create_secret(basedir: &Path, name: &str) -> Result<Vec<u8>, NodeConfigError> {
    let private = basedir.join("private");
    let path = private.join(name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NodeConfigError::Io { path, source }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            make_private_dir(&private)?;
            let text = make_secret_text();
            write_new_private(&path, text.as_bytes()).map_err(io(&path))?;
            // Another process may have won the race: use whatever is on disk now.
            std::fs::read_to_string(&path).map_err(io(&path))?
        }
        Err(e) => return Err(NodeConfigError::Io { path, source: e }),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(NodeConfigError::BadSecret {
            path,
            reason: "the file is empty".into(),
        });
    }
    cairn_core::base32::decode_tahoe_lenient(trimmed).map_err(|e| NodeConfigError::BadSecret {
        path,
        reason: format!("not Tahoe base32 ({e}); Tahoe writes base32 of 16 random bytes here"),
    })
}

/// `private/` with mode 0700, as `tahoe create-node` makes it.
pub fn make_private_dir(private: &Path) -> Result<(), NodeConfigError> {
    std::fs::create_dir_all(private).map_err(|source| NodeConfigError::Io {
        path: private.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Create `path` with `data` unless it exists (then leave it alone).
fn write_new_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(data)?;
            f.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

//! `DIR/tahoe.cfg`, read the way Tahoe-LAFS 1.20 reads it (Python `ConfigParser`: `key = value`
//! or `key: value`, `#`/`;` comment lines, indented continuation lines, option names
//! case-insensitive, later duplicates win), and the storage settings cairn takes from it.
//!
//! Tahoe's keys: `[node] nickname, tub.port, tub.location`; `[storage] enabled, readonly,
//! reserved_space, storage_dir, expire.*`. cairn-only knobs live in an optional `[cairn]`
//! section (Tahoe refuses unknown sections, so add it only to nodes that cairn runs); every one
//! has a default.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::expire::ExpirationPolicy;

/// The config file name, as Tahoe.
pub const CONFIG_FILE: &str = "tahoe.cfg";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("[{section}] {key} = {value:?}: {reason}")]
    Bad {
        section: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

/// A parsed INI file: section → (lowercased key → value).
#[derive(Debug, Clone, Default)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ini {
    /// Read and parse the node directory `basedir`'s `tahoe.cfg`: what
    /// [`NodeConfig::load`] and [`crate::client::ClientConfig::load`] both start from.
    pub fn read(basedir: &Path) -> Result<Ini, ConfigError> {
        let path = basedir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        Ini::parse(&text, &path)
    }

    /// Parse INI text as Python's `ConfigParser(strict=False)` does.
    pub fn parse(text: &str, path: &Path) -> Result<Ini, ConfigError> {
        let mut ini = Ini::default();
        let mut section: Option<String> = None;
        let mut last_key: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim_end_matches('\r');
            let trimmed = line.trim();
            if trimmed.is_empty() {
                last_key = None;
                continue;
            }
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let indented = line.starts_with(' ') || line.starts_with('\t');
            if indented {
                if let (Some(s), Some(k)) = (&section, &last_key) {
                    let v = ini.sections.get_mut(s).and_then(|m| m.get_mut(k));
                    if let Some(v) = v {
                        v.push('\n');
                        v.push_str(trimmed);
                        continue;
                    }
                }
            }
            if trimmed.starts_with('[') {
                let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
                    return Err(ConfigError::Syntax {
                        path: path.into(),
                        line: line_no,
                        reason: "bad section header".into(),
                    });
                };
                ini.sections.entry(name.to_string()).or_default();
                section = Some(name.to_string());
                last_key = None;
                continue;
            }
            let Some(sec) = &section else {
                return Err(ConfigError::Syntax {
                    path: path.into(),
                    line: line_no,
                    reason: "key outside any [section]".into(),
                });
            };
            let pos = trimmed
                .find(['=', ':'])
                .ok_or_else(|| ConfigError::Syntax {
                    path: path.into(),
                    line: line_no,
                    reason: format!("expected `key = value`, got {trimmed:?}"),
                })?;
            let key = trimmed[..pos].trim().to_ascii_lowercase();
            let value = trimmed[pos + 1..].trim().to_string();
            ini.sections
                .entry(sec.clone())
                .or_default()
                .insert(key.clone(), value);
            last_key = Some(key);
        }
        Ok(ini)
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)?
            .get(&key.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    /// Like [`Ini::get`], with an empty value treated as unset.
    pub fn get_nonempty(&self, section: &str, key: &str) -> Option<&str> {
        self.get(section, key).filter(|v| !v.is_empty())
    }

    pub fn get_bool(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(section, key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| ConfigError::Bad {
                section: section.into(),
                key: key.into(),
                value: v.into(),
                reason: "not a boolean (true/false/yes/no/on/off/1/0)".into(),
            }),
        }
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }
}

/// `ConfigParser.getboolean`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Tahoe's `parse_abbreviated_size`: `^(\d+)([KMGTPE]?I?B?)$`, case-insensitive; `K` = 1000,
/// `KiB` = 1024. Empty → `None`.
pub fn parse_abbreviated_size(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let up = s.to_ascii_uppercase();
    let digits_end = up.find(|c: char| !c.is_ascii_digit()).unwrap_or(up.len());
    if digits_end == 0 {
        return Err(format!("unparseable value {s}"));
    }
    let number: u64 = up[..digits_end]
        .parse()
        .map_err(|_| format!("unparseable value {s}"))?;
    let mut suffix = &up[digits_end..];
    if let Some(x) = suffix.strip_suffix('B') {
        suffix = x;
    }
    let (letter, binary) = match suffix.strip_suffix('I') {
        Some(x) => (x, true),
        None => (suffix, false),
    };
    let exp = match letter {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return Err(format!("unparseable value {s}")),
    };
    let base: u64 = if binary { 1024 } else { 1000 };
    let mult = base
        .checked_pow(exp)
        .ok_or_else(|| format!("value too large {s}"))?;
    number
        .checked_mul(mult)
        .map(Some)
        .ok_or_else(|| format!("value too large {s}"))
}

/// Where the node listens: from `[node] tub.port` (Twisted endpoint strings, comma separated:
/// `tcp:PORT`, `tcp:PORT:interface=ADDR`, `tcp:port=PORT:interface=ADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub interface: IpAddr,
    pub port: u16,
}

/// One `tub.location` hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationHint {
    Tcp {
        host: String,
        port: u16,
    },
    Tor {
        host: String,
        port: u16,
    },
    /// i2p or anything else: kept in the FURL, no NURL (as Tahoe).
    Other(String),
}

impl LocationHint {
    fn parse(hint: &str) -> LocationHint {
        let parts: Vec<&str> = hint.split(':').collect();
        match parts.as_slice() {
            ["tcp", host, port] => match port.parse() {
                Ok(port) => LocationHint::Tcp {
                    host: host.to_string(),
                    port,
                },
                Err(_) => LocationHint::Other(hint.into()),
            },
            ["tor", host, port] => match port.parse() {
                Ok(port) => LocationHint::Tor {
                    host: host.to_string(),
                    port,
                },
                Err(_) => LocationHint::Other(hint.into()),
            },
            _ => LocationHint::Other(hint.into()),
        }
    }
}

/// cairn's own limits (`[cairn]` section). Each has a default and a reason.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `allocated-size` accepted for one immutable share (`max_share_size`).
    /// Tahoe has none beyond free space; the default 64 GiB only stops absurd requests.
    pub max_immutable_share_size: u64,
    /// Largest mutable share (`max_mutable_share_size`). Tahoe announces 69,105 TB; the
    /// default 64 GiB keeps a write at a huge offset from claiming that much disk.
    pub max_mutable_share_size: u64,
    /// Immutable uploads in progress at once, server-wide (`max_concurrent_uploads`).
    pub max_concurrent_uploads: usize,
    /// Largest read-test-write body held in memory (`max_rtw_body_size`). Tahoe allows 2^48
    /// (buffered to disk); one SDMF/MDMF share write is at most the share size.
    pub max_rtw_body_size: u64,
    /// Largest PATCH body (`max_patch_body_size`); the Python client sends one block write per
    /// request, far smaller.
    pub max_patch_body_size: u64,
    /// TLS connections at once (`max_connections`).
    pub max_connections: usize,
    /// Connections at once from one client IP (`max_connections_per_ip`).
    pub max_connections_per_ip: usize,
    /// An upload with no write for this long is aborted and its space released
    /// (`upload_timeout`, Tahoe: 30 minutes).
    pub upload_timeout: Duration,
    /// Time to finish the TLS handshake and send request headers (`header_timeout`).
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is abandoned (`body_idle_timeout`).
    pub body_idle_timeout: Duration,
    /// How often the lease crawler runs a step, and how many prefixes per step.
    pub crawl_interval: Duration,
    pub crawl_prefixes_per_step: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_immutable_share_size: 64 << 30,
            max_mutable_share_size: 64 << 30,
            max_concurrent_uploads: 4096,
            max_rtw_body_size: 256 << 20,
            max_patch_body_size: 256 << 20,
            max_connections: 1024,
            max_connections_per_ip: 128,
            upload_timeout: Duration::from_secs(30 * 60),
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(120),
            crawl_interval: Duration::from_secs(10),
            crawl_prefixes_per_step: 16,
        }
    }
}

/// Everything the storage server needs from a node directory's config.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub basedir: PathBuf,
    pub ini: Ini,
    pub nickname: String,
    pub listeners: Vec<Listener>,
    /// The raw `tub.location` (goes into the FURL as is).
    pub location: String,
    pub hints: Vec<LocationHint>,
    pub storage_enabled: bool,
    pub readonly: bool,
    pub reserved_space: u64,
    pub storage_dir: PathBuf,
    pub expiration: ExpirationPolicy,
    pub limits: Limits,
}

impl NodeConfig {
    /// Read `basedir/tahoe.cfg`.
    pub fn load(basedir: &Path) -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_ini(basedir, Ini::read(basedir)?)
    }

    pub fn from_ini(basedir: &Path, ini: Ini) -> Result<NodeConfig, ConfigError> {
        let bad = |section: &str, key: &str, value: &str, reason: String| ConfigError::Bad {
            section: section.into(),
            key: key.into(),
            value: value.into(),
            reason,
        };
        let nickname = ini.get("node", "nickname").unwrap_or("").to_string();
        let tub_port = ini.get("node", "tub.port").unwrap_or("").to_string();
        let mut listeners = Vec::new();
        for ep in tub_port.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if ep == "disabled" {
                continue;
            }
            listeners.push(parse_endpoint(ep).map_err(|r| bad("node", "tub.port", &tub_port, r))?);
        }
        let location = ini.get("node", "tub.location").unwrap_or("").to_string();
        let mut hints = Vec::new();
        for h in location.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if h == "AUTO" {
                // Tahoe substitutes the machine's addresses; cairn uses the listen addresses.
                for l in &listeners {
                    let host = if l.interface.is_unspecified() {
                        Ipv4Addr::LOCALHOST.to_string()
                    } else {
                        l.interface.to_string()
                    };
                    hints.push(LocationHint::Tcp { host, port: l.port });
                }
            } else if h == "disabled" {
            } else if !h.contains(':') {
                hints.push(LocationHint::Other(h.into()));
            } else if h.starts_with("tcp:") || h.starts_with("tor:") || h.starts_with("i2p:") {
                hints.push(LocationHint::parse(h));
            } else {
                // Legacy `HOST:PORT` means tcp (Foolscap); Tahoe makes no NURL of it.
                hints.push(LocationHint::Other(h.into()));
            }
        }
        let storage_enabled = ini.get_bool("storage", "enabled", true)?;
        let readonly = ini.get_bool("storage", "readonly", false)?;
        let rs = ini.get("storage", "reserved_space").unwrap_or("");
        let reserved_space = parse_abbreviated_size(rs)
            .map_err(|r| bad("storage", "reserved_space", rs, r))?
            .unwrap_or(0);
        let storage_dir = match ini.get_nonempty("storage", "storage_dir") {
            Some(d) => {
                let p = expand_home(d);
                if p.is_absolute() {
                    p
                } else {
                    basedir.join(p)
                }
            }
            None => basedir.join("storage"),
        };
        let expiration =
            ExpirationPolicy::from_config(|k| ini.get("storage", k).map(|s| s.to_string()))
                .map_err(|e| ConfigError::Other(e.to_string()))?;

        let mut limits = Limits::default();
        let size = |key: &str, default: u64| -> Result<u64, ConfigError> {
            match ini.get_nonempty("cairn", key) {
                None => Ok(default),
                Some(v) => parse_abbreviated_size(v)
                    .map_err(|r| bad("cairn", key, v, r))
                    .map(|o| o.unwrap_or(default)),
            }
        };
        let count = |key: &str, default: usize| -> Result<usize, ConfigError> {
            match ini.get_nonempty("cairn", key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| bad("cairn", key, v, "not a number".into())),
            }
        };
        let secs = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            match ini.get_nonempty("cairn", key) {
                None => Ok(default),
                Some(v) => crate::expire::parse_duration(v)
                    .ok()
                    .and_then(|s| u64::try_from(s).ok())
                    .or_else(|| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        bad(
                            "cairn",
                            key,
                            v,
                            "not a duration (e.g. `30 minutes`, `90`)".into(),
                        )
                    }),
            }
        };
        limits.max_immutable_share_size = size("max_share_size", limits.max_immutable_share_size)?;
        limits.max_mutable_share_size =
            size("max_mutable_share_size", limits.max_mutable_share_size)?;
        limits.max_concurrent_uploads =
            count("max_concurrent_uploads", limits.max_concurrent_uploads)?;
        limits.max_rtw_body_size = size("max_rtw_body_size", limits.max_rtw_body_size)?;
        limits.max_patch_body_size = size("max_patch_body_size", limits.max_patch_body_size)?;
        limits.max_connections = count("max_connections", limits.max_connections)?;
        limits.max_connections_per_ip =
            count("max_connections_per_ip", limits.max_connections_per_ip)?;
        limits.upload_timeout = secs("upload_timeout", limits.upload_timeout)?;
        limits.header_timeout = secs("header_timeout", limits.header_timeout)?;
        limits.body_idle_timeout = secs("body_idle_timeout", limits.body_idle_timeout)?;
        limits.crawl_interval = secs("crawl_interval", limits.crawl_interval)?;
        limits.crawl_prefixes_per_step =
            count("crawl_prefixes_per_step", limits.crawl_prefixes_per_step)?;

        Ok(NodeConfig {
            basedir: basedir.to_path_buf(),
            ini,
            nickname,
            listeners,
            location,
            hints,
            storage_enabled,
            readonly,
            reserved_space,
            storage_dir,
            expiration,
            limits,
        })
    }

    /// `basedir/private/<name>`
    pub fn private_path(&self, name: &str) -> PathBuf {
        self.basedir.join("private").join(name)
    }
}

fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(p)
}

/// Parse one Twisted server endpoint string of the `tcp` kind.
pub fn parse_endpoint(ep: &str) -> Result<Listener, String> {
    let mut parts = ep.split(':');
    let kind = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    let (port_s, args) = match kind {
        "tcp" => (None, rest),
        // A bare number is Twisted's old `PORT` shorthand.
        k if !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()) => (Some(k), rest),
        _ => {
            return Err(format!(
                "unsupported listener {ep:?} (cairn listens on tcp only)"
            ))
        }
    };
    let mut port: Option<u16> = port_s.and_then(|p| p.parse().ok());
    let mut interface: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    for a in args {
        if let Some(v) = a.strip_prefix("interface=") {
            interface = v
                .trim_start_matches('[')
                .trim_end_matches(']')
                .replace("\\", "")
                .parse()
                .map_err(|_| format!("bad interface {v:?} in {ep:?}"))?;
        } else if let Some(v) = a.strip_prefix("port=") {
            port = Some(v.parse().map_err(|_| format!("bad port in {ep:?}"))?);
        } else if a.starts_with("backlog=") {
        } else if port.is_none() {
            port = Some(a.parse().map_err(|_| format!("bad port in {ep:?}"))?);
        } else {
            return Err(format!("unsupported endpoint argument {a:?} in {ep:?}"));
        }
    }
    let port = port.ok_or_else(|| format!("no port in {ep:?}"))?;
    Ok(Listener { interface, port })
}

/// The keys of `[node]` whose endpoints name the node's listening ports.
const PORT_KEYS: [&str; 3] = ["tub.port", "tub.location", "web.port"];

/// `tahoe.cfg` text with every endpoint of `[node] tub.port`, `tub.location` and `web.port`
/// that names port `old` (`tcp:OLD:…`, `tcp:HOST:OLD`, `port=OLD`) moved to `new`; every
/// other line (comments, other keys and sections) kept as it is. Returns `None` when no
/// endpoint names `old`.
pub fn move_port(text: &str, old: u16, new: u16) -> Option<String> {
    let (old_s, new_s) = (old.to_string(), new.to_string());
    let move_field = |f: &str| -> String {
        if f == old_s {
            new_s.clone()
        } else if f.strip_prefix("port=") == Some(old_s.as_str()) {
            format!("port={new_s}")
        } else {
            f.to_string()
        }
    };
    let mut section = String::new();
    let mut changed = false;
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = name.to_string();
        }
        let split = trimmed.find(['=', ':']).filter(|_| {
            section == "node" && !body.starts_with([' ', '\t']) && !trimmed.starts_with(['#', ';'])
        });
        if let Some(pos) = split {
            let key = trimmed[..pos].trim().to_ascii_lowercase();
            if PORT_KEYS.contains(&key.as_str()) {
                let value = trimmed[pos + 1..].trim();
                let moved: Vec<String> = value
                    .split(',')
                    .map(|ep| {
                        ep.trim()
                            .split(':')
                            .map(move_field)
                            .collect::<Vec<_>>()
                            .join(":")
                    })
                    .collect();
                let moved = moved.join(",");
                if moved != value {
                    changed = true;
                    out.push_str(&format!("{} = {moved}{ending}", trimmed[..pos].trim()));
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

/// The text of a new `tahoe.cfg`, as `tahoe create-node --hostname H --port P` writes it, but
/// listening only on the given interface.
pub fn new_config_text(
    nickname: &str,
    hostname: &str,
    listen: IpAddr,
    port: u16,
    reserved: &str,
) -> String {
    let iface = match listen {
        IpAddr::V6(v6) => format!("{v6}").replace(':', "\\:"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let location_host = if hostname.contains(':') {
        format!("[{hostname}]")
    } else {
        hostname.to_string()
    };
    format!(
        "# -*- mode: conf; coding: utf-8 -*-\n\
         \n\
         # This file controls the configuration of the node that lives in this directory.\n\
         # It is only read at node startup. Written by `cairn create-node`; the keys are\n\
         # Tahoe-LAFS 1.20's (docs/configuration.rst), so `tahoe run` reads it too.\n\
         \n\n\
         [node]\n\
         nickname = {nickname}\n\
         reveal-IP-address = true\n\
         web.port =\n\
         web.static = public_html\n\
         tub.port = tcp:{port}:interface={iface}\n\
         tub.location = tcp:{location_host}:{port}\n\
         \n\
         [client]\n\
         helper.furl =\n\
         \n\
         shares.needed = 3\n\
         shares.happy = 7\n\
         shares.total = 10\n\
         \n\
         {sections}\
         # cairn's own limits go in a [cairn] section (see docs/operating-a-storage-node.md);\n\
         # Tahoe refuses unknown sections, so add one only to a node that only cairn runs.\n",
        sections = storage_and_helper_sections(true, reserved),
    )
}

/// The `[storage]` and `[helper]` sections of a new `tahoe.cfg`, as Tahoe 1.20's
/// `create-node` and `create-client` write them (a blank line after each).
pub fn storage_and_helper_sections(storage_enabled: bool, reserved_space: &str) -> String {
    format!(
        "[storage]\n\
         # Shall this node provide storage service?\n\
         enabled = {storage_enabled}\n\
         #readonly =\n\
         reserved_space = {reserved_space}\n\
         #storage_dir =\n\
         #expire.enabled =\n\
         #expire.mode =\n\
         \n\
         [helper]\n\
         # Shall this node run a helper service that clients can use?\n\
         enabled = false\n\
         \n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_abbreviated_size("1G").unwrap(), Some(1_000_000_000));
        assert_eq!(parse_abbreviated_size("1GiB").unwrap(), Some(1 << 30));
        assert_eq!(parse_abbreviated_size("10kb").unwrap(), Some(10_000));
        assert_eq!(parse_abbreviated_size("123").unwrap(), Some(123));
        assert_eq!(parse_abbreviated_size("").unwrap(), None);
        assert!(parse_abbreviated_size("1X").is_err());
        assert!(parse_abbreviated_size("G").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("tcp:3457:interface=127.0.0.1").unwrap(),
            Listener {
                interface: "127.0.0.1".parse().unwrap(),
                port: 3457
            }
        );
        assert_eq!(parse_endpoint("tcp:3457").unwrap().port, 3457);
        assert!(parse_endpoint("tor:3457").is_err());
    }

    #[test]
    fn move_port_rewrites_only_the_node_endpoints() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let text = new_config_text("n", "127.0.0.1", ip, 12345, "1G")
            .replace("web.port =\n", "web.port = tcp:port=12345:interface=127.0.0.1\n")
            + "\n[client]\n# tub.port = tcp:12345\nintroducer.furl = pb://x@tcp:127.0.0.1:12345/y\n";
        let moved = move_port(&text, 12345, 23456).unwrap();
        let cfg = Ini::parse(&moved, Path::new("tahoe.cfg")).unwrap();
        assert_eq!(
            cfg.get("node", "tub.port"),
            Some("tcp:23456:interface=127.0.0.1")
        );
        assert_eq!(cfg.get("node", "tub.location"), Some("tcp:127.0.0.1:23456"));
        assert_eq!(
            cfg.get("node", "web.port"),
            Some("tcp:port=23456:interface=127.0.0.1")
        );
        // Other sections and comments stay as they were.
        assert!(moved.contains("# tub.port = tcp:12345\n"));
        assert!(moved.contains("pb://x@tcp:127.0.0.1:12345/y"));
        assert_eq!(moved.lines().count(), text.lines().count());
        assert_eq!(move_port(&text, 999, 1000), None);
    }

    #[test]
    fn ini_and_new_config() {
        let text = new_config_text("n", "127.0.0.1", "127.0.0.1".parse().unwrap(), 1234, "1G");
        let ini = Ini::parse(&text, Path::new("x")).unwrap();
        let c = NodeConfig::from_ini(Path::new("/node"), ini).unwrap();
        assert_eq!(
            c.listeners,
            vec![Listener {
                interface: "127.0.0.1".parse().unwrap(),
                port: 1234
            }]
        );
        assert_eq!(
            c.hints,
            vec![LocationHint::Tcp {
                host: "127.0.0.1".into(),
                port: 1234
            }]
        );
        assert_eq!(c.reserved_space, 1_000_000_000);
        assert_eq!(c.storage_dir, PathBuf::from("/node/storage"));
        assert!(c.storage_enabled);
        let ini = Ini::parse(
            "[node]\nNick: a\n  b\n[storage]\nenabled=false\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(ini.get("node", "nick"), Some("a\nb"));
        assert!(!ini.get_bool("storage", "enabled", true).unwrap());
    }
}

//! Creating node directories in Tahoe's layout, so `tahoe run` can run them too:
//! `cairn create-node` (a storage node: `tahoe.cfg`, `private/`, identity, `storage/`, the
//! announcement; with a web port) and `cairn create-client` (no storage).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::client::{make_private_dir, ClientConfig, NodeConfigError, Secrets, WebPort};
use crate::config::{ConfigError, NodeConfig, CONFIG_FILE};
use crate::identity::{self, IdentityError, NodeIdentity};

/// Errors of node creation.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    NodeConfig(#[from] NodeConfigError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Tahoe's node-directory marker and the text `tahoe create-node` and `create-client` write
/// into it.
const TAHOE_CLIENT_TAC: &str = "tahoe-client.tac";
const TAHOE_CLIENT_TAC_TEXT: &str = "\nimport sys\n\
print(\"Nodes created by Tahoe-LAFS v1.11.0 or later cannot be run by\")\n\
print(\"releases of Tahoe-LAFS before v1.10.0.\")\n\
sys.exit(1)\n";

/// Options of `cairn create-client`.
#[derive(Debug, Clone, Default)]
pub struct CreateClientOptions {
    /// `[node] web.port`. `None`: a free port on 127.0.0.1, chosen now (so nodes created on
    /// one machine do not collide, unlike Tahoe's fixed default of 3456). `Some("none")` or
    /// `Some("")`: no web gateway.
    pub webport: Option<String>,
    pub nickname: String,
    /// `[client] shares.needed` (default 3).
    pub shares_needed: Option<u16>,
    /// `[client] shares.happy` (default 7).
    pub shares_happy: Option<u16>,
    /// `[client] shares.total` (default 10).
    pub shares_total: Option<u16>,
}

/// Options of `cairn create-node`.
#[derive(Debug, Clone)]
pub struct CreateNodeOptions {
    pub hostname: String,
    pub port: u16,
    /// Address to listen on; by default the hostname if it is an IP address, else the
    /// address it resolves to.
    pub listen: Option<IpAddr>,
    pub nickname: String,
    pub reserved_space: String,
}

/// The address a node created for `hostname` listens on: the hostname itself if it is an
/// IP address, else what it resolves to here. Never the wildcard address: a node listens
/// only on the host it is created for.
fn resolve_listen_address(hostname: &str) -> Result<IpAddr, CreateError> {
    if let Ok(ip) = hostname.parse() {
        return Ok(ip);
    }
    use std::net::ToSocketAddrs;
    let resolved = (hostname, 0u16)
        .to_socket_addrs()
        .map_err(|source| CreateError::Io {
            what: format!(
                "resolving --hostname {hostname} (pass --listen-address to choose the address)"
            ),
            source,
        })?;
    let mut addrs: Vec<IpAddr> = resolved.map(|a| a.ip()).collect();
    addrs.sort_by_key(|a| !a.is_ipv4()); // prefer IPv4, as Tahoe's tcp: endpoints do
    addrs.into_iter().next().ok_or_else(|| {
        CreateError::Other(format!(
            "--hostname {hostname} resolves to no address; pass --listen-address"
        ))
    })
}

/// Create a storage node directory as `tahoe create-node` would (tahoe.cfg, private/, identity,
/// storage/), listening only on the given address. Refuses a directory that already has a
/// tahoe.cfg. Returns the loaded config and identity.
pub fn create_storage_node(
    dir: &Path,
    opts: &CreateNodeOptions,
) -> Result<(NodeConfig, NodeIdentity), CreateError> {
    let cfg_path = dir.join(CONFIG_FILE);
    if cfg_path.exists() {
        return Err(CreateError::Other(format!(
            "{} already exists; not overwriting a node",
            cfg_path.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|source| CreateError::Io {
        what: dir.display().to_string(),
        source,
    })?;
    let listen = match opts.listen {
        Some(a) => a,
        None => resolve_listen_address(&opts.hostname)?,
    };
    let port = if opts.port == 0 {
        // Pick a free port now, as Tahoe does at creation, but outside the ephemeral range
        // (see `ports`).
        crate::ports::pick(listen, &Default::default()).map_err(|source| CreateError::Io {
            what: format!("finding a free port on {listen}"),
            source,
        })?
    } else {
        opts.port
    };
    let text = crate::config::new_config_text(
        &opts.nickname,
        &opts.hostname,
        listen,
        port,
        &opts.reserved_space,
    );
    identity::write_replace(&cfg_path, text.as_bytes(), 0o644)?;
    let readme = "This directory contains files which contain private data for the node.\n\
                  Do not share them with anyone.\n";
    std::fs::create_dir_all(dir.join("private")).map_err(|source| CreateError::Io {
        what: "private/".into(),
        source,
    })?;
    identity::write_replace(
        &dir.join("private").join("README"),
        readme.as_bytes(),
        0o600,
    )?;
    // Tahoe recognises a node directory by this marker (`tahoe run` refuses a directory
    // without a `*client*.tac`); with it, a Tahoe node can take over a cairn node directory.
    identity::write_replace(
        &dir.join(TAHOE_CLIENT_TAC),
        TAHOE_CLIENT_TAC_TEXT.as_bytes(),
        0o644,
    )?;
    let config = NodeConfig::load(dir)?;
    std::fs::create_dir_all(&config.storage_dir).map_err(|source| CreateError::Io {
        what: config.storage_dir.display().to_string(),
        source,
    })?;
    let identity = NodeIdentity::load_or_create(&config)?;
    write_announcement(&config, &identity)?;
    Ok((config, identity))
}

/// Write `DIR/storage-announcement.yaml` (what `cairn storage announcement` prints).
pub fn write_announcement(config: &NodeConfig, identity: &NodeIdentity) -> Result<(), CreateError> {
    let text = format!(
        "{}\n",
        identity.announcement_yaml(&config.nickname, &config.hints)
    );
    identity::write_replace(
        &identity::announcement_file(&config.basedir),
        text.as_bytes(),
        0o644,
    )?;
    Ok(())
}

/// Resolve a `--webport` option to what goes into `web.port`: the endpoint given (checked),
/// empty for `none`, or a free 127.0.0.1 port picked now.
pub fn resolve_webport(webport: Option<&str>) -> Result<String, CreateError> {
    match webport.map(str::trim) {
        Some("") => Ok(String::new()),
        Some(w) if w.eq_ignore_ascii_case("none") => Ok(String::new()),
        Some(w) => {
            WebPort::parse(w).map_err(|r| CreateError::Other(format!("--webport {w:?}: {r}")))?;
            Ok(w.to_string())
        }
        None => {
            let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let port = free_port(ip)?;
            Ok(WebPort::format(ip, port))
        }
    }
}

/// A TCP port for a node to listen on later: free on `ip` now and outside the kernel's
/// ephemeral range, where an outgoing connection could take it first ([`crate::ports`]).
pub fn free_port(ip: IpAddr) -> Result<u16, CreateError> {
    crate::ports::pick(ip, &Default::default()).map_err(|source| CreateError::Io {
        what: format!("finding a free port on {ip}"),
        source,
    })
}

/// The `tahoe.cfg` of a client node, line for line what `tahoe create-client` 1.20 writes.
pub fn client_config_text(
    nickname: &str,
    webport: &str,
    needed: u16,
    happy: u16,
    total: u16,
) -> String {
    format!(
        "# -*- mode: conf; coding: utf-8 -*-\n\
         \n\
         # This file controls the configuration of the Tahoe node that\n\
         # lives in this directory. It is only read at node startup.\n\
         # For details about the keys that can be set here, please\n\
         # read the 'docs/configuration.rst' file that came with your\n\
         # Tahoe installation.\n\
         \n\n\
         [node]\n\
         nickname = {nickname}\n\
         reveal-IP-address = true\n\
         web.port = {webport}\n\
         web.static = public_html\n\
         tub.port = disabled\n\
         tub.location = disabled\n\
         \n\
         #log_gatherer.furl =\n\
         #timeout.keepalive =\n\
         #timeout.disconnect =\n\
         #ssh.port = 8022\n\
         #ssh.authorized_keys_file = ~/.ssh/authorized_keys\n\
         \n\
         [client]\n\
         helper.furl =\n\
         \n\
         # Encoding parameters this client will use for newly-uploaded files\n\
         # This can be changed at any time: the encoding is saved in\n\
         # each filecap, and we can download old files with any encoding\n\
         # settings\n\
         shares.needed = {needed}\n\
         shares.happy = {happy}\n\
         shares.total = {total}\n\
         \n\
         {sections}",
        sections = crate::config::storage_and_helper_sections(false, "1G"),
    )
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CreateError {
    let what = what.into();
    move |source| CreateError::Io { what, source }
}

/// `cairn create-client DIR`: a client node (no storage) in Tahoe's layout: `tahoe.cfg`,
/// `tahoe-client.tac`, `private/` (0700) with the convergence and lease secrets. Refuses a
/// directory that already has a `tahoe.cfg`. Returns the loaded configuration.
pub fn create_client(dir: &Path, opts: &CreateClientOptions) -> Result<ClientConfig, CreateError> {
    let cfg_path = dir.join(CONFIG_FILE);
    if cfg_path.exists() {
        return Err(CreateError::Other(format!(
            "{} already exists; not overwriting a node",
            cfg_path.display()
        )));
    }
    if opts.nickname.contains('\n') {
        return Err(CreateError::Other("the nickname must be one line".into()));
    }
    let webport = resolve_webport(opts.webport.as_deref())?;
    let (k, h, n) = (
        opts.shares_needed.unwrap_or(3),
        opts.shares_happy.unwrap_or(7),
        opts.shares_total.unwrap_or(10),
    );
    let text = client_config_text(&opts.nickname, &webport, k, h, n);
    // Check everything before writing anything.
    let ini = crate::config::Ini::parse(&text, &cfg_path)?;
    ClientConfig::from_ini(dir, ini)?;

    std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    make_private_dir(&dir.join("private"))?;
    identity::write_replace(
        &dir.join(TAHOE_CLIENT_TAC),
        TAHOE_CLIENT_TAC_TEXT.as_bytes(),
        0o644,
    )?;
    identity::write_replace(&cfg_path, text.as_bytes(), 0o644)?;
    Secrets::load_or_create(dir)?;
    Ok(ClientConfig::load(dir)?)
}

/// `cairn create-node`: a storage node as [`create_storage_node`] makes it,
/// with `[node] web.port` set as for [`create_client`] (a free 127.0.0.1 port unless
/// `webport` says otherwise; `none` for no gateway) and the secrets created.
pub fn create_node(
    dir: &Path,
    opts: &CreateNodeOptions,
    webport: Option<&str>,
) -> Result<(ClientConfig, NodeIdentity), CreateError> {
    let web = resolve_webport(webport)?;
    let (_, identity) = create_storage_node(dir, opts)?;
    let cfg_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(io(cfg_path.display().to_string()))?;
    let text = set_ini_value(&text, "node", "web.port", &web);
    identity::write_replace(&cfg_path, text.as_bytes(), 0o644)?;
    Secrets::load_or_create(dir)?;
    Ok((ClientConfig::load(dir)?, identity))
}

/// Set `key = value` in `[section]` of INI text, replacing the first existing line for the
/// key or adding one at the end of the section (comments and layout are kept).
pub fn set_ini_value(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut done = false;
    let mut section_end: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            if current.as_deref() == Some(section) && !done {
                section_end = Some(out.len());
            }
            current = Some(t[1..t.len() - 1].to_string());
        } else if !done
            && current.as_deref() == Some(section)
            && !t.starts_with('#')
            && !t.starts_with(';')
        {
            if let Some(pos) = t.find(['=', ':']) {
                if t[..pos].trim().eq_ignore_ascii_case(key) {
                    out.push(format!("{key} = {value}"));
                    done = true;
                    continue;
                }
            }
        }
        out.push(line.to_string());
    }
    if !done {
        let line = format!("{key} = {value}");
        match section_end {
            Some(mut i) => {
                // before the blank lines that end the section
                while i > 0 && out[i - 1].trim().is_empty() {
                    i -= 1;
                }
                out.insert(i, line);
            }
            None if current.as_deref() == Some(section) => out.push(line),
            None => {
                out.push(format!("[{section}]"));
                out.push(line);
            }
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// `DIR/node.url`, written as Tahoe writes it once the web server listens.
pub fn node_url_path(dir: &Path) -> PathBuf {
    dir.join("node.url")
}

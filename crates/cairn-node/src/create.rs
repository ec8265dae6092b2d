//! `cairn create-client` and the web-port part of `cairn create-node`: node directories in
//! Tahoe's layout, so `tahoe run` can run them too.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use cairn_storage::config::CONFIG_FILE;
use cairn_storage::identity::{self, NodeIdentity};
use cairn_storage::server::{self, CreateNodeOptions};

use crate::config::{make_private_dir, ClientConfig, Secrets, WebPort};
use crate::NodeError;

/// Tahoe's node-directory marker and the text `tahoe create-client` writes into it.
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

/// Resolve a `--webport` option to what goes into `web.port`: the endpoint given (checked),
/// empty for `none`, or a free 127.0.0.1 port picked now.
pub fn resolve_webport(webport: Option<&str>) -> Result<String, NodeError> {
    match webport.map(str::trim) {
        Some("") => Ok(String::new()),
        Some(w) if w.eq_ignore_ascii_case("none") => Ok(String::new()),
        Some(w) => {
            WebPort::parse(w).map_err(|r| NodeError::Other(format!("--webport {w:?}: {r}")))?;
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
/// ephemeral range, where an outgoing connection could take it first (`cairn_storage::ports`).
pub fn free_port(ip: IpAddr) -> Result<u16, NodeError> {
    cairn_storage::ports::pick(ip, &Default::default()).map_err(|source| NodeError::Io {
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
        sections = cairn_storage::config::storage_and_helper_sections(false, "1G"),
    )
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// `cairn create-client DIR`: a client node (no storage) in Tahoe's layout: `tahoe.cfg`,
/// `tahoe-client.tac`, `private/` (0700) with the convergence and lease secrets. Refuses a
/// directory that already has a `tahoe.cfg`. Returns the loaded configuration.
pub fn create_client(dir: &Path, opts: &CreateClientOptions) -> Result<ClientConfig, NodeError> {
    let cfg_path = dir.join(CONFIG_FILE);
    if cfg_path.exists() {
        return Err(NodeError::Other(format!(
            "{} already exists; not overwriting a node",
            cfg_path.display()
        )));
    }
    if opts.nickname.contains('\n') {
        return Err(NodeError::Other("the nickname must be one line".into()));
    }
    let webport = resolve_webport(opts.webport.as_deref())?;
    let (k, h, n) = (
        opts.shares_needed.unwrap_or(3),
        opts.shares_happy.unwrap_or(7),
        opts.shares_total.unwrap_or(10),
    );
    let text = client_config_text(&opts.nickname, &webport, k, h, n);
    // Check everything before writing anything.
    let ini = cairn_storage::config::Ini::parse(&text, &cfg_path)?;
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

/// `cairn create-node`: a storage node as [`cairn_storage::server::create_node`] makes it,
/// with `[node] web.port` set as for [`create_client`] (a free 127.0.0.1 port unless
/// `webport` says otherwise; `none` for no gateway) and the secrets created.
pub fn create_node(
    dir: &Path,
    opts: &CreateNodeOptions,
    webport: Option<&str>,
) -> Result<(ClientConfig, NodeIdentity), NodeError> {
    let web = resolve_webport(webport)?;
    let (_, identity) = server::create_node(dir, opts)?;
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

//! Node configuration: Tahoe's `[client]` and `[node] web.port` keys with their defaults and
//! clear errors, the secrets in `private/`, and the node directories `create_client` and
//! `create_node` write.

use std::path::{Path, PathBuf};

use cairn_config::config::Ini;
use cairn_core::chk::DEFAULT_MAX_SEGMENT_SIZE;
use cairn_node::config::{load_or_create_secret, ClientConfig, Secrets, WebPort};
use cairn_node::CreateClientOptions;

fn load(text: &str) -> Result<ClientConfig, String> {
    let ini = Ini::parse(text, Path::new("tahoe.cfg")).map_err(|e| e.to_string())?;
    ClientConfig::from_ini(Path::new("/node"), ini).map_err(|e| e.to_string())
}

#[test]
fn defaults_are_tahoes() {
    let c = load("[node]\nnickname = x\n").unwrap();
    assert_eq!(
        (c.params.needed, c.params.happy, c.params.total),
        (3, 7, 10)
    );
    assert_eq!(c.params.max_segment_size, DEFAULT_MAX_SEGMENT_SIZE);
    assert_eq!(
        DEFAULT_MAX_SEGMENT_SIZE,
        1024 * 1024,
        "Tahoe 1.20's DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE"
    );
    assert_eq!(c.web_port, None, "no web.port: no gateway");
    assert!(
        c.node.storage_enabled,
        "Tahoe's [storage] enabled defaults to true"
    );
    assert_eq!(c.tempdir, PathBuf::from("/node/tmp"));
    // An empty web.port (what `tahoe create-client --webport none` writes) is no gateway too.
    assert_eq!(load("[node]\nweb.port =\n").unwrap().web_port, None);
}

#[test]
fn client_keys_are_read() {
    let c = load(
        "[client]\nshares.needed = 2\nshares.happy=4\nshares.total: 5\n\
         shares._max_immutable_segment_size_for_testing = 4096\n\
         [node]\nweb.port = tcp:3456:interface=127.0.0.1\ntempdir = /var/tmp/x\n[storage]\nenabled = false\n",
    )
    .unwrap();
    assert_eq!(
        (
            c.params.needed,
            c.params.happy,
            c.params.total,
            c.params.max_segment_size
        ),
        (2, 4, 5, 4096)
    );
    let w = c.web_port.unwrap();
    assert_eq!(w.spec, "tcp:3456:interface=127.0.0.1");
    assert_eq!(
        (w.listener.interface.to_string().as_str(), w.listener.port),
        ("127.0.0.1", 3456)
    );
    assert_eq!(c.tempdir, PathBuf::from("/var/tmp/x"));
    assert!(!c.node.storage_enabled);
}

#[test]
fn bad_share_counts_are_clear_errors() {
    let cases = [
        ("shares.needed = three", "shares.needed"),
        ("shares.total = -1", "shares.total"),
        ("shares.happy = ", "shares.happy"),
        ("shares.needed = 0", "at least 1"),
        (
            "shares.needed = 4\nshares.total = 3",
            "more than shares.total",
        ),
        (
            "shares.happy = 11",
            "shares.happy = 11 is more than shares.total = 10",
        ),
        ("shares.happy = 0", "shares.happy must be at least 1"),
        ("shares.total = 257\nshares.happy = 7", "at most 256"),
        (
            "shares._max_immutable_segment_size_for_testing = 0",
            "positive",
        ),
    ];
    for (body, expect) in cases {
        let err = load(&format!("[client]\n{body}\n")).expect_err(body);
        assert!(
            err.contains(expect),
            "{body:?}: error {err:?} does not mention {expect:?}"
        );
        assert!(
            err.contains("[client]"),
            "{body:?}: error {err:?} does not name the section"
        );
    }
    // The largest legal values pass.
    let c =
        load("[client]\nshares.needed = 256\nshares.happy = 256\nshares.total = 256\n").unwrap();
    assert_eq!(c.params.total, 256);
}

#[test]
fn web_port_syntax() {
    let ok = [
        ("tcp:3456", "0.0.0.0", 3456),
        ("tcp:3456:interface=127.0.0.1", "127.0.0.1", 3456),
        ("tcp:port=8080:interface=127.0.0.1", "127.0.0.1", 8080),
        ("tcp:0:interface=127.0.0.1", "127.0.0.1", 0),
        ("tcp:0", "0.0.0.0", 0),
        ("3456", "0.0.0.0", 3456),
        ("tcp:3456:interface=\\:\\:1", "::1", 3456),
    ];
    for (spec, iface, port) in ok {
        let w = WebPort::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            (w.listener.interface.to_string().as_str(), w.listener.port),
            (iface, port),
            "{spec}"
        );
    }
    for (spec, expect) in [
        ("ssl:443", "plain HTTP"),
        ("unix:/tmp/sock", "tcp"),
        ("tcp:99999", "bad port"),
        ("tcp:3456:interface=nowhere", "bad interface"),
        ("tcp:", "port"),
        ("tcp:1,tcp:2", "one endpoint"),
    ] {
        let e = WebPort::parse(spec).expect_err(spec);
        assert!(e.contains(expect), "{spec}: {e:?} lacks {expect:?}");
        let cfg = load(&format!("[node]\nweb.port = {spec}\n")).expect_err(spec);
        assert!(cfg.contains("web.port"), "{cfg}");
    }
    assert_eq!(
        WebPort::format("::1".parse().unwrap(), 80),
        "tcp:80:interface=\\:\\:1"
    );
}

#[test]
fn secrets_are_created_and_read_as_tahoe_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = Secrets::load_or_create(dir.path()).unwrap();
    assert_eq!(s.convergence.len(), 16);
    assert_eq!(s.lease.len(), 16);
    assert_ne!(s.convergence, s.lease);
    for name in ["convergence", "secret"] {
        let p = dir.path().join("private").join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        // base32 of 16 bytes (26 characters) and a newline, as Tahoe's _make_secret().
        assert_eq!(text.len(), 27, "{name}: {text:?}");
        assert!(text.ends_with('\n'));
        assert!(text[..26]
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    // Read back, not regenerated.
    let again = Secrets::load_or_create(dir.path()).unwrap();
    assert_eq!(again.convergence, s.convergence);
    assert_eq!(again.lease, s.lease);

    // A secret Tahoe wrote (any base32, surrounding whitespace stripped) is used as is:
    // "mfqwcylbmfqwcylbmfqwcylbme" is base32 of 16 × 'a', the vectors' secret.
    std::fs::write(
        dir.path().join("private/convergence"),
        "  mfqwcylbmfqwcylbmfqwcylbme\n\n",
    )
    .unwrap();
    assert_eq!(
        load_or_create_secret(dir.path(), "convergence").unwrap(),
        b"aaaaaaaaaaaaaaaa"
    );

    std::fs::write(dir.path().join("private/convergence"), "not base32!\n").unwrap();
    let e = load_or_create_secret(dir.path(), "convergence")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("private/convergence") && e.contains("base32"),
        "{e}"
    );
    std::fs::write(dir.path().join("private/convergence"), "\n").unwrap();
    let e = load_or_create_secret(dir.path(), "convergence")
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn create_client_writes_what_tahoe_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("c");
    let opts = CreateClientOptions {
        webport: Some("tcp:37621:interface=127.0.0.1".into()),
        nickname: "me".into(),
        ..Default::default()
    };
    let cfg = cairn_node::create_client(&node, &opts).unwrap();
    // Byte for byte the tahoe.cfg of `tahoe create-client --webport ... -n me` (Tahoe 1.20.0).
    let golden = include_str!("data/tahoe-create-client.cfg");
    assert_eq!(
        std::fs::read_to_string(node.join("tahoe.cfg")).unwrap(),
        golden
    );
    assert!(
        node.join("tahoe-client.tac").is_file(),
        "Tahoe's node marker"
    );
    assert!(node.join("private/convergence").is_file() && node.join("private/secret").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(node.join("private"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
    assert!(!cfg.node.storage_enabled);
    assert_eq!(cfg.web_port.unwrap().listener.port, 37621);
    assert_eq!(
        (cfg.params.needed, cfg.params.happy, cfg.params.total),
        (3, 7, 10)
    );

    // A second create into the same directory is refused.
    let e = cairn_node::create_client(&node, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");

    tahoe_reads(&node);
}

#[test]
fn create_client_options() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateClientOptions {
        webport: None,
        nickname: "n".into(),
        shares_needed: Some(2),
        shares_happy: Some(3),
        shares_total: Some(4),
    };
    let a = cairn_node::create_client(&dir.path().join("a"), &opts).unwrap();
    let b = cairn_node::create_client(&dir.path().join("b"), &opts).unwrap();
    assert_eq!((a.params.needed, a.params.happy, a.params.total), (2, 3, 4));
    // Default web port: a free port on 127.0.0.1 picked at creation; two nodes differ.
    let (wa, wb) = (a.web_port.unwrap(), b.web_port.unwrap());
    assert_eq!(wa.listener.interface.to_string(), "127.0.0.1");
    assert_ne!(wa.listener.port, 0);
    assert_ne!(
        wa.listener.port, wb.listener.port,
        "nodes created on one machine must not collide"
    );
    assert_eq!(
        wa.spec,
        format!("tcp:{}:interface=127.0.0.1", wa.listener.port)
    );

    // --webport none: no gateway (Tahoe writes an empty web.port).
    let none = CreateClientOptions {
        webport: Some("none".into()),
        ..Default::default()
    };
    let c = cairn_node::create_client(&dir.path().join("c"), &none).unwrap();
    assert!(c.web_port.is_none());
    let text = std::fs::read_to_string(dir.path().join("c/tahoe.cfg")).unwrap();
    assert!(text.contains("\nweb.port = \n"), "{text}");

    // Bad options fail before anything is written.
    for (opts, expect) in [
        (
            CreateClientOptions {
                webport: Some("ssl:1".into()),
                ..Default::default()
            },
            "--webport",
        ),
        (
            CreateClientOptions {
                shares_happy: Some(11),
                ..Default::default()
            },
            "shares.happy",
        ),
        (
            CreateClientOptions {
                shares_needed: Some(11),
                ..Default::default()
            },
            "shares.needed",
        ),
    ] {
        let d = dir.path().join("bad");
        let e = cairn_node::create_client(&d, &opts).unwrap_err();
        assert!(e.to_string().contains(expect), "{e}");
        assert!(!d.exists(), "nothing written for a bad option: {e}");
    }
}

#[test]
fn create_node_sets_the_web_port() {
    let dir = tempfile::tempdir().unwrap();
    let opts = cairn_config::create::CreateNodeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        listen: None,
        nickname: "s".into(),
        reserved_space: "1G".into(),
    };
    let (cfg, _id) = cairn_node::create_node(&dir.path().join("a"), &opts, None).unwrap();
    let w = cfg.web_port.expect("a default web port");
    assert_eq!(w.listener.interface.to_string(), "127.0.0.1");
    assert_ne!(w.listener.port, 0);
    assert!(cfg.node.storage_enabled);
    assert_eq!(cfg.node.listeners.len(), 1);
    assert_ne!(cfg.node.listeners[0].port, w.listener.port);
    let text = std::fs::read_to_string(dir.path().join("a/tahoe.cfg")).unwrap();
    assert_eq!(text.matches("web.port").count(), 1, "{text}");
    assert!(dir.path().join("a/private/convergence").is_file());

    let (cfg, _) = cairn_node::create_node(
        &dir.path().join("b"),
        &opts,
        Some("tcp:4567:interface=127.0.0.1"),
    )
    .unwrap();
    assert_eq!(cfg.web_port.unwrap().spec, "tcp:4567:interface=127.0.0.1");
    let (cfg, _) = cairn_node::create_node(&dir.path().join("c"), &opts, Some("none")).unwrap();
    assert!(cfg.web_port.is_none());
    let e = cairn_node::create_node(&dir.path().join("d"), &opts, Some("tcp:x")).unwrap_err();
    assert!(
        matches!(e, cairn_config::create::CreateError::Other(_))
            && e.to_string().contains("--webport"),
        "{e}"
    );
    assert!(!dir.path().join("d").exists());

    tahoe_reads(&dir.path().join("a"));
}

#[test]
fn set_ini_value_keeps_the_rest() {
    use cairn_node::create::set_ini_value;
    let text =
        "# c\n[node]\nnickname = a\nweb.port =\n#web.port = x\n\n[client]\nshares.needed = 3\n";
    assert_eq!(
        set_ini_value(text, "node", "web.port", "tcp:1"),
        "# c\n[node]\nnickname = a\nweb.port = tcp:1\n#web.port = x\n\n[client]\nshares.needed = 3\n"
    );
    assert_eq!(
        set_ini_value(text, "client", "shares.total", "5"),
        "# c\n[node]\nnickname = a\nweb.port =\n#web.port = x\n\n[client]\nshares.needed = 3\nshares.total = 5\n"
    );
    assert_eq!(
        set_ini_value("[node]\na = 1\n\n[x]\n", "node", "b", "2"),
        "[node]\na = 1\nb = 2\n\n[x]\n"
    );
    assert_eq!(
        set_ini_value("[x]\n", "node", "b", "2"),
        "[x]\n[node]\nb = 2\n"
    );
}

/// Where a Tahoe-LAFS 1.20 Python is, if one is installed (`scripts/setup-tahoe-venv.sh`).
fn tahoe_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        std::env::var_os("CAIRN_TAHOE_PYTHON").map(PathBuf::from),
        Some(root.join(".venv-tahoe/bin/python")),
        Some(PathBuf::from("/tmp/tahoe-venv/bin/python")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
}

/// Tahoe itself reads the node directory: its config validator accepts every section and
/// key, and it reads the same web.port and convergence secret.
fn tahoe_reads(node: &Path) {
    let Some(py) = tahoe_python() else {
        eprintln!(
            "no Tahoe-LAFS venv found: skipping the check that Tahoe reads {}",
            node.display()
        );
        return;
    };
    let script = "import sys\n\
from allmydata.node import read_config\n\
from allmydata.client import _valid_config\n\
c = read_config(sys.argv[1], 'client.port', _valid_config=_valid_config())\n\
print(c.get_config('node', 'web.port'))\n\
print(c.get_private_config('convergence'))\n\
print(c.get_config('client', 'shares.happy'))\n";
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(node)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Tahoe refuses {}: {}",
        node.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cfg = ClientConfig::load(node).unwrap();
    assert_eq!(
        lines[0],
        cfg.web_port.as_ref().map(|w| w.spec.as_str()).unwrap_or("")
    );
    let conv = std::fs::read_to_string(node.join("private/convergence")).unwrap();
    assert_eq!(lines[1], conv.trim());
    assert_eq!(lines[2], cfg.params.happy.to_string());
}

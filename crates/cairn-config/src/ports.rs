//! Ports a node will listen on later: chosen outside the kernel's ephemeral range, checked
//! free, and, when one is taken after all, the process that holds it.
//!
//! A port picked by binding to port 0 lies inside the ephemeral range (Linux:
//! `/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default), where the kernel hands
//! it out as the source port of any outgoing connection: the node's own connections, a
//! browser, a package download can take it before the node that was given it starts
//! listening. Ports below (or above) that range are only ever taken by someone binding them
//! on purpose.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::path::Path;

use rand::Rng;

/// Linux's default ephemeral range, used where `/proc` cannot be read.
const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);
/// The lowest port handed out: below it are the well-known and many fixed service ports.
const LOWEST: u16 = 10000;
/// Random draws before giving up (each one a bind attempt).
const ATTEMPTS: usize = 2000;

/// The kernel's range for the source ports of outgoing connections (inclusive).
pub fn ephemeral_range() -> RangeInclusive<u16> {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(lo, hi)| lo <= hi)
        .unwrap_or(DEFAULT_EPHEMERAL);
    lo..=hi
}

/// Where listening ports are chosen, given the ephemeral range: the larger of the blocks
/// below it (from 10000, or from 1024 when the range starts low) and above it.
pub fn listen_range(ephemeral: &RangeInclusive<u16>) -> RangeInclusive<u16> {
    let (lo, hi) = (*ephemeral.start(), *ephemeral.end());
    let floor = if lo > LOWEST + 2000 { LOWEST } else { 1024 };
    let below = floor..=lo.saturating_sub(1);
    let above = hi.saturating_add(1).max(floor)..=u16::MAX;
    let len =
        |r: &RangeInclusive<u16>| (u32::from(*r.end()) + 1).saturating_sub(u32::from(*r.start()));
    if len(&below) >= len(&above) {
        below
    } else {
        above
    }
}

/// Whether a listener could bind `ip:port` now. Binding is the test the kernel itself applies:
/// it fails for a listener on the port and for an outgoing connection whose source is the
/// port (`SO_REUSEADDR`, which std sets, tolerates only connections in TIME_WAIT, as a node's
/// own listener will).
pub fn is_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

/// A port for a node to listen on later at `ip`: outside the ephemeral range, free now, and
/// not in `taken` (ports already given to other nodes that are not running yet).
pub fn pick(ip: IpAddr, taken: &HashSet<u16>) -> std::io::Result<u16> {
    let range = listen_range(&ephemeral_range());
    let mut rng = rand::thread_rng();
    for _ in 0..ATTEMPTS {
        let port = rng.gen_range(range.clone());
        if !taken.contains(&port) && is_free(ip, port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "no free port on {ip} in {}..={} after {ATTEMPTS} tries",
            range.start(),
            range.end()
        ),
    ))
}

/// Who holds a TCP port on this machine, as far as `/proc` tells: `pid 1234 (nc)`, with how
/// (`listening`, or `an open connection from that port`). `None` when nothing is found (no
/// procfs, another network namespace, or a process of another user without the rights).
pub fn holder(port: u16) -> Option<String> {
    let mut sockets = Vec::new(); // (inode, listening)
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            sockets.extend(sockets_on_port(&text, port));
        }
    }
    if sockets.is_empty() {
        return None;
    }
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = socket_inode(&link) else {
                continue;
            };
            if let Some((_, listening)) = sockets.iter().find(|(i, _)| *i == inode) {
                let comm = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                let how = if *listening {
                    "listening"
                } else {
                    "an open connection from that port"
                };
                return Some(format!("pid {pid} ({comm}), {how}"));
            }
        }
    }
    None
}

/// The sentence for a listener that could not bind `addr` because it is in use.
pub fn in_use_message(addr: SocketAddr) -> String {
    match holder(addr.port()) {
        Some(h) => format!(
            "port {} on {} is already in use by {h}",
            addr.port(),
            addr.ip()
        ),
        None => format!(
            "port {} on {} is already in use (by a process this user cannot see)",
            addr.port(),
            addr.ip()
        ),
    }
}

/// `(inode, listening)` of each socket in a `/proc/net/tcp{,6}` table whose local port is
/// `port`. Lines that do not parse are skipped.
fn sockets_on_port(table: &str, port: u16) -> Vec<(u64, bool)> {
    const TCP_LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let (_, p) = local.rsplit_once(':')?;
            let p = u16::from_str_radix(p, 16).ok()?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            let listening = *f.get(3)? == TCP_LISTEN;
            (p == port && inode != 0).then_some((inode, listening))
        })
        .collect()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn listen_range_avoids_the_ephemeral_range() {
        assert_eq!(listen_range(&(32768..=60999)), 10000..=32767);
        // A range starting low leaves the ports above it.
        assert_eq!(listen_range(&(1024..=40000)), 40001..=65535);
        // A range ending at the top leaves the ports below.
        assert_eq!(listen_range(&(50000..=65535)), 10000..=49999);
        // A range starting just above 10000: from 1024.
        assert_eq!(listen_range(&(11000..=60999)), 1024..=10999);
    }

    #[test]
    fn picked_ports_are_free_outside_the_ephemeral_range_and_not_given_twice() {
        let eph = ephemeral_range();
        let mut taken = HashSet::new();
        for _ in 0..50 {
            let p = pick(LOOPBACK, &taken).unwrap();
            assert!(!eph.contains(&p), "{p} is in the ephemeral range {eph:?}");
            assert!(listen_range(&eph).contains(&p));
            assert!(is_free(LOOPBACK, p));
            assert!(taken.insert(p), "{p} given twice");
        }
    }

    #[test]
    fn a_listener_and_an_outgoing_connection_both_hold_a_port() {
        // A listener.
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let lport = l.local_addr().unwrap().port();
        assert!(!is_free(LOOPBACK, lport));
        let h = holder(lport).expect("own listener found in /proc");
        assert!(h.contains(&format!("pid {}", std::process::id())), "{h}");
        assert!(h.contains("listening"), "{h}");
        let msg = in_use_message(SocketAddr::new(LOOPBACK, lport));
        assert!(
            msg.contains(&lport.to_string()) && msg.contains("listening"),
            "{msg}"
        );

        // An outgoing connection: its source port is taken for a listener too.
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let cport = c.local_addr().unwrap().port();
        assert!(!is_free(LOOPBACK, cport));
        let h = holder(cport).expect("own connection found in /proc");
        assert!(h.contains("open connection"), "{h}");
        drop(c);
        drop(l);
    }

    #[test]
    fn proc_net_tcp_lines() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:2710 0100007F:8000 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n\
   2: 0100007F:2711 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n\
   garbage\n";
        assert_eq!(
            sockets_on_port(table, 10000),
            vec![(4242, true), (4343, false)]
        );
        assert_eq!(socket_inode(Path::new("socket:[77]")), Some(77));
        assert_eq!(socket_inode(Path::new("pipe:[77]")), None);
    }
}

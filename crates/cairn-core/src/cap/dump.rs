//! `tahoe debug dump-cap CAP` (`allmydata/scripts/debug.py::dump_cap`, no options).

use core::fmt::Write;

use super::{Cap, ChkReadCap, ChkVerifyCap, LitCap, ReadKey, StorageIndex, WriteKey};
use crate::{base32, hashutil};

/// The exact text `tahoe debug dump-cap CAP` prints for `cap` when run without
/// `--nodeid`/`--client-secret`/`--client-dir`: a blank line, a header naming the kind,
/// then one indented line per field. Every line ends in `"\n"`.
///
/// Tahoe 1.20 has no branch for `URI:DIR2-LIT:` caps, so for those it prints
/// `unknown cap type`; so do we.
pub fn dump_cap(cap: &Cap) -> String {
    dump_cap_with(cap, None, None)
}

/// `tahoe debug dump-cap [--nodeid NODEID] [--client-secret SECRET] CAP`.
///
/// With a client secret, CHK read caps and mutable write caps (and the directories over
/// them) also show the lease renewal/cancel secrets derived from it (for that server too,
/// with a node id); with a node id, mutable write caps also show the write enabler. An
/// empty secret counts as none (Python truthiness), as in Tahoe.
pub fn dump_cap_with(cap: &Cap, nodeid: Option<&[u8; 20]>, client_secret: Option<&[u8]>) -> String {
    let opts = Opts {
        nodeid,
        secret: client_secret.filter(|s| !s.is_empty()),
    };
    let mut out = String::from("\n");
    dump_instance(cap, &opts, &mut out);
    out
}

struct Opts<'a> {
    nodeid: Option<&'a [u8; 20]>,
    secret: Option<&'a [u8]>,
}

fn line(out: &mut String, s: &str) {
    out.push_str(s);
    out.push('\n');
}

fn b32(b: &[u8]) -> String {
    base32::encode(b)
}

fn dump_instance(cap: &Cap, o: &Opts<'_>, out: &mut String) {
    line(out, header(cap));
    dump_fields(cap, o, out);
}

/// The line that names the kind.
fn header(cap: &Cap) -> &'static str {
    match cap {
        Cap::ChkRead(_) => "CHK File:",
        Cap::ChkVerify(_) => "CHK Verifier URI:",
        Cap::Lit(_) => "Literal File URI:",
        Cap::SdmfWrite(_) => "SDMF Writeable URI:",
        Cap::SdmfRead(_) => "SDMF Read-only URI:",
        Cap::SdmfVerify(_) => "SDMF Verifier URI:",
        Cap::MdmfWrite(_) => "MDMF Writeable URI:",
        Cap::MdmfRead(_) => "MDMF Read-only URI:",
        Cap::MdmfVerify(_) => "MDMF Verifier URI:",
        Cap::ChkDir(_) => "CHK Directory URI:",
        Cap::ChkDirVerify(_) => "CHK Directory Verifier URI:",
        Cap::SdmfDirWrite(_) | Cap::MdmfDirWrite(_) => "Directory Writeable URI:",
        Cap::SdmfDirRead(_) | Cap::MdmfDirRead(_) => "Directory Read-only URI:",
        Cap::SdmfDirVerify(_) | Cap::MdmfDirVerify(_) => "Directory Verifier URI:",
        // LiteralDirectoryURI matches none of dump_uri_instance's isinstance checks.
        Cap::LitDir(_) => "unknown cap type",
    }
}

/// The indented lines after the header; a directory shows those of its filenode cap.
fn dump_fields(cap: &Cap, o: &Opts<'_>, out: &mut String) {
    match cap {
        Cap::ChkRead(c) => dump_chk(c, o, out),
        Cap::ChkVerify(c) => dump_chk_verifier(c, out),
        Cap::Lit(c) => dump_lit(c, out),
        Cap::SdmfWrite(c) => dump_write(c.writekey(), &c.readonly().into(), o, out),
        Cap::MdmfWrite(c) => dump_write(c.writekey(), &c.readonly().into(), o, out),
        Cap::SdmfRead(c) => dump_read(c.readkey(), &c.verifier().into(), o, out),
        Cap::MdmfRead(c) => dump_read(c.readkey(), &c.verifier().into(), o, out),
        Cap::SdmfVerify(c) => dump_verify(c.storage_index(), c.fingerprint(), out),
        Cap::MdmfVerify(c) => dump_verify(c.storage_index(), c.fingerprint(), out),
        Cap::ChkDir(d) => dump_chk(d.filenode_cap(), o, out),
        Cap::ChkDirVerify(d) => dump_chk_verifier(d.filenode_cap(), out),
        Cap::SdmfDirWrite(d) => dump_fields(&d.filenode_cap().clone().into(), o, out),
        Cap::SdmfDirRead(d) => dump_fields(&d.filenode_cap().clone().into(), o, out),
        Cap::SdmfDirVerify(d) => dump_fields(&d.filenode_cap().clone().into(), o, out),
        Cap::MdmfDirWrite(d) => dump_fields(&d.filenode_cap().clone().into(), o, out),
        Cap::MdmfDirRead(d) => dump_fields(&d.filenode_cap().clone().into(), o, out),
        Cap::MdmfDirVerify(d) => dump_fields(&d.filenode_cap().clone().into(), o, out),
        Cap::LitDir(_) => {}
    }
}

fn dump_chk(c: &ChkReadCap, o: &Opts<'_>, out: &mut String) {
    line(out, &format!(" key: {}", b32(c.key())));
    line(out, &format!(" UEB hash: {}", b32(c.ueb_hash())));
    line(out, &format!(" size: {}", c.size()));
    line(out, &format!(" k/N: {}/{}", c.needed(), c.total()));
    line(out, &format!(" storage index: {}", c.storage_index()));
    dump_secrets(c.storage_index(), o, out);
}

fn dump_chk_verifier(c: &ChkVerifyCap, out: &mut String) {
    line(out, &format!(" UEB hash: {}", b32(c.ueb_hash())));
    line(out, &format!(" size: {}", c.size()));
    line(out, &format!(" k/N: {}/{}", c.needed(), c.total()));
    line(out, &format!(" storage index: {}", c.storage_index()));
}

fn dump_lit(c: &LitCap, out: &mut String) {
    line(out, &format!(" data: {}", quote_output(c.data())));
}

/// A mutable write cap: its write key, then the lines of its read cap `read`, then the
/// write enabler and secrets.
fn dump_write(wk: &WriteKey, read: &Cap, o: &Opts<'_>, out: &mut String) {
    line(out, &format!(" writekey: {}", b32(wk.as_bytes())));
    dump_fields(read, o, out);
    line(out, "");
    if let Some(nodeid) = o.nodeid {
        let we = hashutil::ssk_write_enabler_hash(wk.as_bytes(), nodeid);
        line(out, &format!(" write_enabler: {}", b32(&we)));
        line(out, "");
    }
    let si = read
        .storage_index()
        .expect("a mutable cap has a storage index");
    dump_secrets(si, o, out);
}

/// `debug.py::_dump_secrets`.
fn dump_secrets(si: StorageIndex, o: &Opts<'_>, out: &mut String) {
    let Some(secret) = o.secret else { return };
    let crs = hashutil::my_renewal_secret_hash(secret);
    line(out, &format!(" client renewal secret: {}", b32(&crs)));
    let frs = hashutil::file_renewal_secret_hash(&crs, si.as_bytes());
    line(out, &format!(" file renewal secret: {}", b32(&frs)));
    if let Some(nodeid) = o.nodeid {
        let renew = hashutil::bucket_renewal_secret_hash(&frs, nodeid);
        line(out, &format!(" lease renewal secret: {}", b32(&renew)));
    }
    let ccs = hashutil::my_cancel_secret_hash(secret);
    line(out, &format!(" client cancel secret: {}", b32(&ccs)));
    let fcs = hashutil::file_cancel_secret_hash(&ccs, si.as_bytes());
    line(out, &format!(" file cancel secret: {}", b32(&fcs)));
    if let Some(nodeid) = o.nodeid {
        let cancel = hashutil::bucket_cancel_secret_hash(&fcs, nodeid);
        line(out, &format!(" lease cancel secret: {}", b32(&cancel)));
    }
}

/// A mutable read cap: its read key, then the lines of its verify cap `verify`.
fn dump_read(rk: &ReadKey, verify: &Cap, o: &Opts<'_>, out: &mut String) {
    line(out, &format!(" readkey: {}", b32(rk.as_bytes())));
    dump_fields(verify, o, out);
}

fn dump_verify(si: StorageIndex, fp: &[u8; 32], out: &mut String) {
    line(out, &format!(" storage index: {si}"));
    line(out, &format!(" fingerprint: {}", b32(fp)));
}

/// `encodingutil.quote_output(data)` with `quotemarks=True` (so newlines are quoted too)
/// and a UTF-8 stdout.
pub(crate) fn quote_output(data: &[u8]) -> String {
    match core::str::from_utf8(data) {
        Err(_) => {
            // b"..." with ESCAPABLE_8BIT = [^ !#\x25-\x5B\x5D-\x5F\x61-\x7E] escaped.
            let mut s = String::from("b\"");
            for &b in data {
                match b {
                    b'"' | b'$' | b'`' | b'\\' => {
                        s.push('\\');
                        s.push(b as char);
                    }
                    b' ' | b'!' | b'#' | 0x25..=0x5B | 0x5D..=0x5F | 0x61..=0x7E => {
                        s.push(b as char)
                    }
                    _ => {
                        let _ = write!(s, "\\x{b:02x}");
                    }
                }
            }
            s.push('"');
            s
        }
        Ok(text) => {
            // MUST_DOUBLE_QUOTE_NL: anything outside these ranges forces double quotes.
            let plain = |c: char| {
                matches!(c as u32,
                    0x20..=0x26 | 0x28..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFDCF | 0xFDF0..=0xFFFC)
            };
            if text.chars().all(plain) {
                return format!("'{text}'");
            }
            // ESCAPABLE_UNICODE.
            let mut s = String::from("\"");
            for c in text.chars() {
                let cp = c as u32;
                match c {
                    '"' | '$' | '`' | '\\' => {
                        s.push('\\');
                        s.push(c);
                    }
                    _ if matches!(cp,
                        0x20 | 0x21 | 0x23 | 0x25..=0x5B | 0x5D..=0x5F | 0x61..=0x7E
                        | 0xA0..=0xD7FF | 0xE000..=0xFDCF | 0xFDF0..=0xFFFC) =>
                    {
                        s.push(c)
                    }
                    _ if cp > 0xFFFF => {
                        let _ = write!(s, "\\U{cp:08x}");
                    }
                    _ if cp > 0xFF => {
                        let _ = write!(s, "\\u{cp:04x}");
                    }
                    _ => {
                        let _ = write!(s, "\\x{cp:02x}");
                    }
                }
            }
            s.push('"');
            s
        }
    }
}

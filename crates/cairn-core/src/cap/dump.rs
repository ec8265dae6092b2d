//! `tahoe debug dump-cap CAP` (`allmydata/scripts/debug.py::dump_cap`, no options).

use core::fmt::Write;

use super::{Cap, ChkReadCap, ChkVerifyCap, LitCap, StorageIndex};
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
    match cap {
        Cap::ChkRead(c) => {
            line(out, "CHK File:");
            dump_chk(c, o, out);
        }
        Cap::ChkVerify(c) => {
            line(out, "CHK Verifier URI:");
            dump_chk_verifier(c, out);
        }
        Cap::Lit(c) => {
            line(out, "Literal File URI:");
            dump_lit(c, out);
        }
        Cap::SdmfWrite(c) => {
            line(out, "SDMF Writeable URI:");
            dump_write(
                c.writekey().as_bytes(),
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                o,
                out,
            );
        }
        Cap::SdmfRead(c) => {
            line(out, "SDMF Read-only URI:");
            dump_read(
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                out,
            );
        }
        Cap::SdmfVerify(c) => {
            line(out, "SDMF Verifier URI:");
            dump_verify(c.storage_index(), c.fingerprint(), out);
        }
        Cap::MdmfWrite(c) => {
            line(out, "MDMF Writeable URI:");
            dump_write(
                c.writekey().as_bytes(),
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                o,
                out,
            );
        }
        Cap::MdmfRead(c) => {
            line(out, "MDMF Read-only URI:");
            dump_read(
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                out,
            );
        }
        Cap::MdmfVerify(c) => {
            line(out, "MDMF Verifier URI:");
            dump_verify(c.storage_index(), c.fingerprint(), out);
        }
        Cap::ChkDir(c) => {
            line(out, "CHK Directory URI:");
            dump_chk(c.filenode_cap(), o, out);
        }
        Cap::ChkDirVerify(c) => {
            line(out, "CHK Directory Verifier URI:");
            dump_chk_verifier(c.filenode_cap(), out);
        }
        Cap::SdmfDirWrite(d) => {
            line(out, "Directory Writeable URI:");
            let c = d.filenode_cap();
            dump_write(
                c.writekey().as_bytes(),
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                o,
                out,
            );
        }
        Cap::SdmfDirRead(d) => {
            line(out, "Directory Read-only URI:");
            let c = d.filenode_cap();
            dump_read(
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                out,
            );
        }
        Cap::SdmfDirVerify(d) => {
            line(out, "Directory Verifier URI:");
            let c = d.filenode_cap();
            dump_verify(c.storage_index(), c.fingerprint(), out);
        }
        Cap::MdmfDirWrite(d) => {
            line(out, "Directory Writeable URI:");
            let c = d.filenode_cap();
            dump_write(
                c.writekey().as_bytes(),
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                o,
                out,
            );
        }
        Cap::MdmfDirRead(d) => {
            line(out, "Directory Read-only URI:");
            let c = d.filenode_cap();
            dump_read(
                c.readkey().as_bytes(),
                c.storage_index(),
                c.fingerprint(),
                out,
            );
        }
        Cap::MdmfDirVerify(d) => {
            line(out, "Directory Verifier URI:");
            let c = d.filenode_cap();
            dump_verify(c.storage_index(), c.fingerprint(), out);
        }
        // LiteralDirectoryURI matches none of dump_uri_instance's isinstance checks.
        Cap::LitDir(_) => line(out, "unknown cap type"),
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

fn dump_write(
    wk: &[u8; 16],
    rk: &[u8; 16],
    si: StorageIndex,
    fp: &[u8; 32],
    o: &Opts<'_>,
    out: &mut String,
) {
    line(out, &format!(" writekey: {}", b32(wk)));
    dump_read(rk, si, fp, out);
    line(out, "");
    if let Some(nodeid) = o.nodeid {
        let we = hashutil::ssk_write_enabler_hash(wk, nodeid);
        line(out, &format!(" write_enabler: {}", b32(&we)));
        line(out, "");
    }
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

fn dump_read(rk: &[u8; 16], si: StorageIndex, fp: &[u8; 32], out: &mut String) {
    line(out, &format!(" readkey: {}", b32(rk)));
    dump_verify(si, fp, out);
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

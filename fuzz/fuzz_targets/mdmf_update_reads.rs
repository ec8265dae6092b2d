#![no_main]
//! An in-place MDMF update's planning and its parse of bytes read from servers
//! (`cairn_core::mutable::update::{plan, OldShare::from_reads}`) never panic: the header
//! comes from a parsed share, offset and length from the input's last 16 bytes, and the
//! "reads" are the input itself at two offsets.
use cairn_core::ids::ShareNum;
use cairn_core::mutable::update::{plan, OldShare};
use cairn_core::mutable::MutableShare;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.len().checked_sub(16) else {
        return;
    };
    let (share, tail) = data.split_at(split);
    let offset = u64::from_be_bytes(tail[..8].try_into().unwrap()) % (1 << 24);
    let len = u64::from_be_bytes(tail[8..].try_into().unwrap()) % (1 << 24);
    let Ok(parsed) = MutableShare::parse(share) else {
        return;
    };
    let Ok(p) = plan(&parsed.header, offset, len) else {
        return;
    };
    let _ = p.block_hash_node_reads();
    let _ = p.segment_plaintext_len();
    let _ = OldShare::from_reads(&p, ShareNum(0), share, 0, share);
    let at = p.old_block_hash_tree_offset();
    let _ = OldShare::from_reads(&p, ShareNum(1), share, at, share);
    let _ = OldShare::from_reads(&p, ShareNum(2), &share[..share.len() / 2], at / 2, share);
});

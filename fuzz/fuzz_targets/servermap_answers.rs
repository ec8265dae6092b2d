#![no_main]
//! The servermap updater takes share bytes from servers: whatever they answer (prefixes,
//! follow-up reads, junk, in any order), it never panics and never asks for an unbounded read.
use std::collections::BTreeMap;

use cairn_core::client::machine::{Failure, Fault};
use cairn_core::ids::{ServerIndex, ShareNum};
use cairn_core::client::mutable::servermap::{
    Action, Event, Mode, Read, ServermapUpdater, UpdateConfig,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: mode; then records of [shnum, len_hi, len_lo, bytes...] answered in turn
    // to whatever the machine asked for.
    let Some((&m, mut rest)) = data.split_first() else { return };
    let mode = match m % 3 {
        0 => Mode::Read,
        1 => Mode::Write,
        _ => Mode::Check,
    };
    let servers: Vec<_> = (0..4).map(ServerIndex).collect();
    let Ok(mut u) = ServermapUpdater::new(UpdateConfig::new(mode, 2, 4, [7u8; 32]), &servers) else { return };
    let mut pending: Vec<u64> = Vec::new();
    let collect = |acts: Vec<Action>, pending: &mut Vec<u64>| {
        for a in acts {
            match a {
                Action::Send { id, request: Read::Query { len } | Read::Share { len, .. }, .. } => {
                    assert!(len <= 1 << 20, "unbounded read of {len} bytes");
                    pending.push(id)
                }
                Action::Cancel { id } => pending.retain(|p| *p != id),
                Action::Report(_) | Action::Finish(_) => {}
                Action::Work(job) | Action::Output(job) => match job {},
            }
        }
    };
    collect(u.start(0), &mut pending);
    let mut now = 0;
    while let Some(id) = pending.pop() {
        now += 10;
        let event = if rest.len() < 3 {
            Event::Failed { id, failure: Failure::new(Fault::Network, "gone") }
        } else {
            let shnum = ShareNum(rest[0] % 6);
            let len = (usize::from(rest[1]) << 8 | usize::from(rest[2])).min(rest.len() - 3);
            let bytes = rest[3..3 + len].to_vec();
            rest = &rest[3 + len..];
            Event::Answer { id, response: BTreeMap::from([(shnum, bytes)]) }
        };
        match u.handle(event, now) {
            Ok(acts) => collect(acts, &mut pending),
            Err(_) => return,
        }
    }
    let _ = u.servermap().recoverable_versions();
});

#!/usr/bin/env python3
"""
Golden vectors for Tahoe-LAFS share containers, leases and mutable read-test-write.

Run from the repository root with the Python that has tahoe-lafs 1.20.0:

    /tmp/tahoe-venv/bin/python vectors/containers/generate_containers.py

Drives the real allmydata.storage.server.StorageServer (and ShareFile /
MutableShareFile for the version-1 samples) in a temporary directory, with
fixed secrets and a fake clock (twisted.internet.task.Clock), and records the
complete container file bytes after every operation, plus the request and
response of every slot_testv_and_readv_and_writev call.  Leases, headers and
data lengths are decoded with Tahoe's own classes, not by this script.

Outputs (next to this script): immutable.json, mutable.json.  Reruns are
byte-identical.  See README.md for the schema.
"""

import json
import os
import shutil
import struct
import sys
import tempfile

from twisted.internet.task import Clock

import allmydata
from allmydata.util import hashutil
from allmydata.interfaces import BadWriteEnablerError
from allmydata.storage.server import StorageServer, DEFAULT_RENEWAL_TIME
from allmydata.storage.common import storage_index_to_dir
from allmydata.storage.immutable import ShareFile, BucketReader
from allmydata.storage.mutable import MutableShareFile
from allmydata.storage import immutable_schema, mutable_schema

HERE = os.path.dirname(os.path.abspath(__file__))

T0 = 1_700_000_000  # fixed "now" for the fake clock (2023-11-14T22:13:20Z)
NODEID = hashutil.tagged_hash(b"cairn-vectors", b"server nodeid")[:20]
OTHER_NODEID = hashutil.tagged_hash(b"cairn-vectors", b"other server nodeid")[:20]


def h(b):
    return b.hex()


def secret(kind, tag):
    return hashutil.tagged_hash(b"cairn-vectors " + kind.encode(), tag.encode())


def si(tag):
    return hashutil.tagged_hash(b"cairn-vectors si", tag.encode())[:16]


def make_server(tmp, name, now):
    clock = Clock()
    clock.advance(now)
    ss = StorageServer(os.path.join(tmp, name), NODEID, clock=clock)
    return ss, clock


def set_time(clock, now):
    # task.Clock cannot go backwards; replace its notion of time directly.
    clock.rightNow = float(now)


def bucket_dir(ss, storage_index):
    return os.path.join(ss.sharedir, storage_index_to_dir(storage_index))


def files_of(ss, storage_index):
    d = bucket_dir(ss, storage_index)
    out = {}
    if os.path.isdir(d):
        for name in sorted(os.listdir(d), key=lambda s: int(s)):
            with open(os.path.join(d, name), "rb") as f:
                out[name] = h(f.read())
    return out


def immutable_decoded(path):
    sf = ShareFile(path)
    with open(path, "rb") as f:
        version, max_size_field, num_leases = struct.unpack(">LLL", f.read(12))
    return {
        "version": version,
        "max_size_field": max_size_field,
        "num_leases": num_leases,
        "data_len": sf.get_length(),
        "leases": [
            {
                "owner_num": l.owner_num,
                # stored form: clear (v1) or blake2b-256 (v2); Tahoe's present_*
                # gives "hash:"+base32 for v2, we record the raw stored bytes.
                "renew_stored": h(_stored(l, "renew_secret")),
                "cancel_stored": h(_stored(l, "cancel_secret")),
                "expiration": int(l.get_expiration_time()),
            }
            for l in sf.get_leases()
        ],
    }


def _stored(lease, attr):
    inner = getattr(lease, "_lease_info", lease)
    return getattr(inner, attr)


def mutable_decoded(path):
    msf = MutableShareFile(path)
    with open(path, "rb") as f:
        hdr = f.read(100)
        magic, nodeid, we, data_length, elo = struct.unpack(">32s20s32sQQ", hdr)
        f.seek(elo)
        (n_extra,) = struct.unpack(">L", f.read(4))
    with open(path, "rb") as f:
        leases = []
        for i, l in msf._enumerate_leases(f):
            leases.append({
                "index": i,
                "owner_num": l.owner_num,
                "renew_stored": h(_stored(l, "renew_secret")),
                "cancel_stored": h(_stored(l, "cancel_secret")),
                "expiration": int(l.get_expiration_time()),
                "nodeid": h(l.nodeid),
            })
    return {
        "magic": h(magic),
        "nodeid": h(nodeid),
        "write_enabler": h(we),
        "data_length": data_length,
        "extra_lease_offset": elo,
        "num_extra_leases": n_extra,
        "share_data": h(msf.readv([(0, data_length)])[0]),
        "live_leases": leases,
    }


# --------------------------------------------------------------------------
# immutable


def immutable_vectors(tmp):
    vecs = []

    # v2: allocate, write, close (one owner-0 lease), then add_lease (owner 1),
    # then renew the first at a later time, then try to renew with an earlier
    # time (no change), then add_lease again with the same secret (renew).
    ss, clock = make_server(tmp, "imm", T0)
    sidx = si("immutable-1")
    data = bytes((i * 7 + 3) % 256 for i in range(100))
    r1, c1 = secret("renew", "imm-1"), secret("cancel", "imm-1")
    r2, c2 = secret("renew", "imm-2"), secret("cancel", "imm-2")
    already, writers = ss.allocate_buckets(sidx, r1, c1, {0, 3}, len(data))
    assert sorted(writers) == [0, 3]
    steps = []
    incoming = writers[0].incominghome
    with open(incoming, "rb") as f:
        incoming_bytes = f.read()
    writers[0].write(0, data[:40])
    writers[0].write(40, data[40:])
    writers[0].close()
    # share 3 is written partially (only the first 10 bytes): the hole stays zero.
    writers[3].write(0, data[:10])
    writers[3].close()
    steps.append({
        "op": "allocate_write_close",
        "now": T0,
        "allocated_size": len(data),
        "renew_secret": h(r1), "cancel_secret": h(c1),
        "owner_num": 0,
        "writes": {"0": [[0, h(data[:40])], [40, h(data[40:])]], "3": [[0, h(data[:10])]]},
        "incoming_file_before_writes": {"0": h(incoming_bytes)},
        "files_after": files_of(ss, sidx),
    })
    set_time(clock, T0 + 1000)
    ss.add_lease(sidx, r2, c2)
    steps.append({"op": "add_lease", "now": T0 + 1000, "renew_secret": h(r2),
                  "cancel_secret": h(c2), "owner_num": 1, "files_after": files_of(ss, sidx)})
    set_time(clock, T0 + 5000)
    ss.renew_lease(sidx, r1)
    steps.append({"op": "renew_lease", "now": T0 + 5000, "renew_secret": h(r1),
                  "files_after": files_of(ss, sidx)})
    set_time(clock, T0 + 10)
    ss.add_lease(sidx, r1, c1)
    steps.append({"op": "add_lease", "now": T0 + 10, "renew_secret": h(r1),
                  "cancel_secret": h(c1), "owner_num": 1,
                  "note": "matching renew secret, earlier time: unchanged",
                  "files_after": files_of(ss, sidx)})
    set_time(clock, T0 + 20000)
    ss.add_lease(sidx, r2, c2)
    steps.append({"op": "add_lease", "now": T0 + 20000, "renew_secret": h(r2),
                  "cancel_secret": h(c2), "owner_num": 1,
                  "note": "matching renew secret, later time: renewed in place",
                  "files_after": files_of(ss, sidx)})
    bdir = bucket_dir(ss, sidx)
    vecs.append({
        "name": "v2-upload-and-leases",
        "storage_index": h(sidx),
        "nodeid": h(NODEID),
        "steps": steps,
        "final_decoded": {n: immutable_decoded(os.path.join(bdir, n)) for n in ("0", "3")},
    })

    # v1 sample: Tahoe's test_storage.py test_read_past_end_of_share_data
    # (85 bytes, as written by Tahoe 1.8.2, share data b"a").
    v1 = struct.pack(">LLL", 1, 1, 1) + b"a" + struct.pack(">L", 0) + \
        b"THIS LETS ME RENEW YOUR FILE...." + b"THIS LETS ME KILL YOUR FILE HAHA" + \
        struct.pack(">L", DEFAULT_RENEWAL_TIME)
    assert len(v1) == 85
    d = os.path.join(tmp, "v1")
    os.makedirs(d)
    p = os.path.join(d, "0")
    with open(p, "wb") as f:
        f.write(v1)

    class MockSS:
        def add_latency(self, *a): pass
        def count(self, *a, **k): pass
    br = BucketReader(MockSS(), p)
    reads = [[o, n, h(br.read(o, n))] for (o, n) in [(0, 1), (0, 69), (0, 2), (1, 5), (5, 5)]]
    steps = [{"op": "file", "files_after": {"0": h(v1)}, "reads": reads}]
    # Tahoe 1.20 adding a lease to a v1 container keeps v1 (clear secrets).
    r3, c3 = secret("renew", "imm-v1"), secret("cancel", "imm-v1")
    from allmydata.storage.lease import LeaseInfo
    sf = ShareFile(p)
    sf.add_or_renew_lease(10**9, LeaseInfo(1, r3, c3, T0 + DEFAULT_RENEWAL_TIME, NODEID))
    with open(p, "rb") as f:
        after = f.read()
    steps.append({"op": "add_or_renew_lease", "now": T0, "renew_secret": h(r3),
                  "cancel_secret": h(c3), "owner_num": 1, "files_after": {"0": h(after)}})
    # renewing the original v1 lease (clear secret comparison)
    sf.add_or_renew_lease(10**9, LeaseInfo(1, b"THIS LETS ME RENEW YOUR FILE....",
                                           b"THIS LETS ME KILL YOUR FILE HAHA",
                                           T0 + DEFAULT_RENEWAL_TIME, NODEID))
    with open(p, "rb") as f:
        after2 = f.read()
    steps.append({"op": "add_or_renew_lease", "now": T0,
                  "renew_secret": h(b"THIS LETS ME RENEW YOUR FILE...."),
                  "cancel_secret": h(b"THIS LETS ME KILL YOUR FILE HAHA"), "owner_num": 1,
                  "files_after": {"0": h(after2)}})
    vecs.append({
        "name": "v1-test-storage-85-bytes",
        "storage_index": None,
        "nodeid": h(NODEID),
        "steps": steps,
        "final_decoded": {"0": immutable_decoded(p)},
    })

    # Lease cancellation as the lease crawler does it (expirer.py process_share ->
    # ShareFile.cancel_lease(cancel_secret)): two leases, the first one cancelled; the
    # second is moved down, the count rewritten and the file truncated.
    ss, clock = make_server(tmp, "imm-cancel", T0)
    sidx = si("immutable-cancel")
    data = bytes((i * 11 + 5) % 256 for i in range(50))
    r1, c1 = secret("renew", "imm-cancel-1"), secret("cancel", "imm-cancel-1")
    r2, c2 = secret("renew", "imm-cancel-2"), secret("cancel", "imm-cancel-2")
    already, writers = ss.allocate_buckets(sidx, r1, c1, {0}, len(data))
    writers[0].write(0, data)
    writers[0].close()
    steps = [{
        "op": "allocate_write_close",
        "now": T0,
        "allocated_size": len(data),
        "renew_secret": h(r1), "cancel_secret": h(c1),
        "owner_num": 0,
        "writes": {"0": [[0, h(data)]]},
        "files_after": files_of(ss, sidx),
    }]
    set_time(clock, T0 + 1000)
    ss.add_lease(sidx, r2, c2)
    steps.append({"op": "add_lease", "now": T0 + 1000, "renew_secret": h(r2),
                  "cancel_secret": h(c2), "owner_num": 1, "files_after": files_of(ss, sidx)})
    bdir = bucket_dir(ss, sidx)
    freed = ShareFile(os.path.join(bdir, "0")).cancel_lease(c1)
    steps.append({"op": "cancel_lease", "cancel_secret": h(c1), "shares": ["0"],
                  "space_freed": freed, "files_after": files_of(ss, sidx)})
    vecs.append({
        "name": "v2-cancel-lease",
        "storage_index": h(sidx),
        "nodeid": h(NODEID),
        "steps": steps,
        "final_decoded": {"0": immutable_decoded(os.path.join(bdir, "0"))},
    })

    # Saturated max-size field: a >= 2^32 allocation is only a header here
    # (the file is sparse in Tahoe; we record the 12-byte header Tahoe writes).
    headers = []
    for size in [0, 1, 2**32 - 1, 2**32, 2**40]:
        headers.append({"allocated_size": size,
                        "header": h(immutable_schema.NEWEST_SCHEMA_VERSION.header(size))})
    return vecs, headers


# --------------------------------------------------------------------------
# mutable


class Rtw:
    def __init__(self, ss, clock, sidx):
        self.ss, self.clock, self.sidx = ss, clock, sidx
        self.steps = []

    def rtw(self, now, we, renew, cancel, tw, readv, note=""):
        set_time(self.clock, now)
        req_tw = {}
        tahoe_tw = {}
        for shnum, (testv, writev, new_length) in tw.items():
            req_tw[str(shnum)] = {
                "test": [{"offset": o, "size": s, "specimen": h(sp)} for (o, s, sp) in testv],
                "write": [{"offset": o, "data": h(d)} for (o, d) in writev],
                "new_length": new_length,
            }
            tahoe_tw[shnum] = ([(o, s, b"eq", sp) for (o, s, sp) in testv], list(writev), new_length)
        step = {
            "op": "rtw",
            "now": now,
            "note": note,
            "secrets": {"write_enabler": h(we), "lease_renew": h(renew), "lease_cancel": h(cancel)},
            "request": {"test_write_vectors": req_tw,
                        "read_vector": [{"offset": o, "size": s} for (o, s) in readv]},
        }
        try:
            ok, data = self.ss.slot_testv_and_readv_and_writev(
                self.sidx, (we, renew, cancel), tahoe_tw, list(readv))
            step["response"] = {"success": ok,
                                "data": {str(k): [h(x) for x in v] for k, v in sorted(data.items())}}
        except BadWriteEnablerError as e:
            step["response"] = {"error": "BadWriteEnablerError", "message": str(e)}
        step["files_after"] = files_of(self.ss, self.sidx)
        self.steps.append(step)
        return step

    def add_lease(self, now, renew, cancel, note=""):
        set_time(self.clock, now)
        self.ss.add_lease(self.sidx, renew, cancel)
        self.steps.append({"op": "add_lease", "now": now, "note": note, "owner_num": 1,
                           "renew_secret": h(renew), "cancel_secret": h(cancel),
                           "files_after": files_of(self.ss, self.sidx)})

    def decoded(self):
        d = bucket_dir(self.ss, self.sidx)
        if not os.path.isdir(d):
            return {}
        return {n: mutable_decoded(os.path.join(d, n)) for n in sorted(os.listdir(d), key=int)}


def mutable_vectors(tmp):
    scenarios = []
    we = secret("we", "mut-1")
    bad_we = secret("we", "mut-wrong")
    R = [secret("renew", "mut-%d" % i) for i in range(8)]
    C = [secret("cancel", "mut-%d" % i) for i in range(8)]
    v1_data = bytes((i * 13 + 1) % 256 for i in range(300))
    v2_data = bytes((i * 31 + 5) % 256 for i in range(700))
    v3_data = bytes((i * 3 + 9) % 256 for i in range(120))

    # Scenario 1: create, overwrite longer, shorter, extra leases, block moves.
    ss, clock = make_server(tmp, "mut1", T0)
    sidx = si("mutable-1")
    s = Rtw(ss, clock, sidx)
    s.rtw(T0, we, R[0], C[0],
          {0: ([(0, 1, b"")], [(0, v1_data)], None), 1: ([(0, 1, b"")], [(0, v1_data[:50])], None)},
          [(0, 10)], note="create two shares (test: empty); reads only see existing shares (none)")
    s.rtw(T0 + 100, we, R[0], C[0],
          {0: ([(0, 300, v1_data)], [(0, v2_data)], None)},
          [(0, 10), (290, 20), (1000, 5)],
          note="overwrite share 0 with a longer version; reads before the write, all shares")
    s.rtw(T0 + 200, we, R[0], C[0],
          {0: ([(0, 10, v2_data[:10])], [(0, v3_data)], len(v3_data))},
          [(0, 10)],
          note="shorter version: write then new_length truncates; container does not shrink")
    s.rtw(T0 + 300, we, R[0], C[0],
          {0: ([(0, 10, b"wrong spec")], [(0, b"NOPE")], None)},
          [(0, 4)], note="test vector fails: no writes, reads still returned")
    s.rtw(T0 + 300, bad_we, R[0], C[0],
          {0: ([], [(0, b"NOPE")], None)},
          [(0, 4)], note="write-enabler mismatch")
    s.rtw(T0 + 300, we, R[0], C[0],
          {0: ([(100, 50, b"")], [], None), 5: ([(0, 1, b"x")], [(0, b"new")], None)},
          [], note="empty share 5 reads as empty: specimen b'x' fails")
    s.rtw(T0 + 300, we, R[0], C[0],
          {0: ([(110, 20, v3_data[110:])], [], 1000)},
          [(0, 200)], note="clipped test passes; new_length larger than data does not extend; renew lease (same time-> later)")
    # extra leases: 4 slots, then extra leases after the data
    for i in range(1, 7):
        s.add_lease(T0 + 400 + i, R[i], C[i], note="lease owner %d" % i)
    s.rtw(T0 + 500, we, R[2], C[2],
          {0: ([], [(200, b"gap-fill")], None)},
          [], note="write past the data end inside the container: gap zero-filled (stale bytes zeroed)")
    s.rtw(T0 + 600, we, R[7], C[7],
          {0: ([], [(1200, b"grow"), (5, b"mid")], None)},
          [(1190, 20)], note="grow: extra-lease block moves, old bytes zeroed; new renew secret adds a lease")
    s.rtw(T0 + 700, we, R[0], C[0],
          {1: ([], [], 0)},
          [], note="new_length 0 deletes share 1")
    s.rtw(T0 + 700, we, R[0], C[0],
          {9: ([], [], 0)},
          [], note="new_length 0 on a missing share: nothing")
    s.rtw(T0 + 800, we, R[0], C[0],
          {2: ([], [], None)},
          [(0, 3)], note="no writes on a missing share still creates an empty share with a lease")
    s.rtw(T0 + 900, we, R[0], C[0],
          {2: ([], [(0, b"")], None), 3: ([], [(10, b"")], None)},
          [], note="zero-length writes: at 0 no growth; at 10 grows data to 10 (zero-filled)")
    scenarios.append({"name": "lifecycle", "storage_index": h(sidx), "nodeid": h(NODEID),
                      "steps": s.steps, "final_decoded": s.decoded()})

    # Scenario 2: delete everything; bucket removed.
    ss, clock = make_server(tmp, "mut2", T0)
    sidx = si("mutable-2")
    s = Rtw(ss, clock, sidx)
    s.rtw(T0, we, R[0], C[0], {0: ([], [(0, b"hello")], None)}, [], note="create")
    s.rtw(T0 + 1, we, R[0], C[0], {0: ([(0, 5, b"hello")], [(0, b"ignored")], 0)}, [(0, 5)],
          note="delete with writes: writes ignored, share and bucket dir removed")
    scenarios.append({"name": "delete", "storage_index": h(sidx), "nodeid": h(NODEID),
                      "steps": s.steps, "final_decoded": s.decoded()})

    # Scenario 3: a v1 container (created by an older server, OTHER_NODEID),
    # then written and leased by Tahoe 1.20: stays v1 with clear secrets.
    ss, clock = make_server(tmp, "mut3", T0)
    sidx = si("mutable-3")
    bdir = bucket_dir(ss, sidx)
    os.makedirs(bdir)
    v1schema = [sc for sc in mutable_schema.ALL_SCHEMAS if sc.version == 1][0]
    MutableShareFile(os.path.join(bdir, "0"), schema=v1schema).create(OTHER_NODEID, we)
    s = Rtw(ss, clock, sidx)
    s.steps.append({"op": "create_v1", "nodeid": h(OTHER_NODEID), "write_enabler": h(we),
                    "files_after": files_of(ss, sidx)})
    s.rtw(T0, we, R[0], C[0], {0: ([(0, 1, b"")], [(0, b"v1 data")], None)}, [(0, 2)],
          note="write to a v1 container: lease stored in clear")
    s.rtw(T0, bad_we, R[0], C[0], {0: ([], [], None)}, [],
          note="mismatch: the error names the nodeid that recorded the write enabler")
    scenarios.append({"name": "v1-container", "storage_index": h(sidx), "nodeid": h(NODEID),
                      "steps": s.steps, "final_decoded": s.decoded()})

    # Scenario 4: lease cancellation as the lease crawler does it (expirer.py
    # process_share -> MutableShareFile.cancel_lease(cancel_secret)): six leases (four
    # header slots, two extra), cancel one in a header slot and one extra lease (each
    # record is blanked in place, nothing is compacted), then a new lease fills the
    # first blanked slot.
    ss, clock = make_server(tmp, "mut4", T0)
    sidx = si("mutable-4")
    s = Rtw(ss, clock, sidx)
    s.rtw(T0, we, R[0], C[0], {0: ([], [(0, b"cancel me not")], None)}, [], note="create")
    for i in range(1, 6):
        s.add_lease(T0 + 100 * i, R[i], C[i])
    bdir = bucket_dir(ss, sidx)
    for i in (1, 5):
        freed = MutableShareFile(os.path.join(bdir, "0")).cancel_lease(C[i])
        s.steps.append({"op": "cancel_lease", "cancel_secret": h(C[i]), "shares": ["0"],
                        "space_freed": freed, "files_after": files_of(ss, sidx)})
    s.add_lease(T0 + 1000, R[6], C[6], note="fills the first blanked slot")
    scenarios.append({"name": "cancel-lease", "storage_index": h(sidx), "nodeid": h(NODEID),
                      "steps": s.steps, "final_decoded": s.decoded()})

    empty = {
        "v1": h(v1schema.header(OTHER_NODEID, we)),
        "v2": h(mutable_schema.NEWEST_SCHEMA_VERSION.header(NODEID, we)),
    }
    return scenarios, empty


def main():
    tmp = tempfile.mkdtemp(prefix="cairn-containers-")
    try:
        imm, headers = immutable_vectors(tmp)
        mut, empty = mutable_vectors(tmp)
    finally:
        shutil.rmtree(tmp)
    common = {
        "tahoe_version": allmydata.__version__,
        "generator": "vectors/containers/generate_containers.py",
        "default_renewal_time": DEFAULT_RENEWAL_TIME,
    }
    with open(os.path.join(HERE, "immutable.json"), "w") as f:
        json.dump(dict(common, vectors=imm, new_share_headers=headers), f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(HERE, "mutable.json"), "w") as f:
        json.dump(dict(common, max_mutable_share_size=MutableShareFile.MAX_SIZE,
                       scenarios=mut, empty_containers=empty), f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote immutable.json, mutable.json")


if __name__ == "__main__":
    sys.exit(main())

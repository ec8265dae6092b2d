#!/usr/bin/env python3
"""Per-file server permutation vectors, computed by Tahoe-LAFS 1.20's own code.

Runs `StorageFarmBroker.get_servers_for_psi` (the ordering every upload and download
uses) over servers made from announcements by `StorageFarmBroker._make_storage_server`
(so `_parse_announcement` derives permutation seed and tubid), and records for each
server the seed, the tubid (lease / write-enabler seed) and `permute_server_hash`.

    /tmp/tahoe-venv/bin/python vectors/permute/generate.py    # from the repo root
writes vectors/permute/permute.json. Deterministic (seeded RNG).
"""
import json
import hashlib
import os
import random

import allmydata
from allmydata.util import base32
from allmydata.util.hashutil import permute_server_hash
from allmydata.storage_client import StorageFarmBroker, StorageClientConfig
from allmydata.node import config_from_string

rng = random.Random(20241122)


def rbytes(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def b32(b):
    return base32.b2a(b).decode("ascii")


def make_server(kind, i):
    """(server_id, announcement) of one of the kinds Tahoe distinguishes."""
    pubkey = rbytes(32)
    key_b32 = b32(pubkey)  # 52 chars
    tubid = rbytes(20)
    tubid_s = b32(tubid)
    if kind == "upper_tubid":
        tubid_s = tubid_s.upper()
    furl = "pb://%s@tcp:host%d.example:%d/%s" % (tubid_s, i, 3456 + i, b32(rbytes(20)))
    ann = {"anonymous-storage-FURL": furl, "nickname": "node-%d" % i}
    server_id = "v0-" + key_b32
    if kind in ("fresh", "upper_tubid"):
        # _Client._init_permutation_seed for a fresh server: b32 of the ASCII key text.
        ann["permutation-seed-base32"] = b32(key_b32.encode("ascii"))
    elif kind == "old_tubid_seed":
        # servers that held shares before ticket #466 announce b32(tubid)
        ann["permutation-seed-base32"] = b32(tubid)
    elif kind == "no_seed_v0":
        pass  # seed = raw 32 key bytes
    elif kind == "no_seed_other_id":
        server_id = "server-%d-%s" % (i, b32(rbytes(5)))  # seed = sha256(server id)
    elif kind == "nurls":
        ann["permutation-seed-base32"] = b32(key_b32.encode("ascii"))
        ann["anonymous-storage-NURLs"] = [
            "pb://%s@127.0.0.1:%d/%s#v=1" % (
                __import__("base64").urlsafe_b64encode(rbytes(32)).decode().rstrip("="),
                4000 + i, b32(rbytes(20)))
        ]
    else:
        raise ValueError(kind)
    return server_id, ann


KINDS = ["fresh", "upper_tubid", "old_tubid_seed", "no_seed_v0", "no_seed_other_id", "nurls"]


def one_case(nservers, preferred_count, nsis, preferred_as="bytes"):
    servers = []
    for i in range(nservers):
        kind = KINDS[i % len(KINDS)] if nservers >= len(KINDS) else rng.choice(KINDS)
        servers.append(make_server(kind, i))
    preferred = [sid for sid, _ in rng.sample(servers, preferred_count)]
    # `[client] peers.preferred` reaches the broker as *str* (StorageClientConfig.from_node_config)
    # but is compared with get_longname(), which is the *bytes* server id: in Tahoe 1.20 on
    # Python 3 the preference never matches. "str" cases record that real behaviour, "bytes"
    # cases the intended rule (preferred servers first, each group in permuted order).
    given = [p.encode("ascii") for p in preferred] if preferred_as == "bytes" else preferred
    config = config_from_string("/dev/null", "tub.port", "")
    broker = StorageFarmBroker(True, None, config, StorageClientConfig(preferred_peers=given))
    records = []
    for sid, ann in servers:
        s = broker._make_storage_server(sid.encode("ascii"), {"ann": ann})
        s._is_connected = True  # what test_add_rref does; no network
        s.is_connected = lambda: True
        broker.servers[sid.encode("ascii")] = s
        records.append({
            "server_id": sid,
            "ann": ann,
            "permutation_seed": s.get_permutation_seed().hex(),
            "lease_seed": s.get_lease_seed().hex(),
        })
    sis = []
    for _ in range(nsis):
        si = rbytes(16)
        order = broker.get_servers_for_psi(si)
        sis.append({
            "storage_index": b32(si),
            "order": [s.get_serverid().decode("ascii") for s in order],
            "permute_hashes": {
                s.get_serverid().decode("ascii"): permute_server_hash(si, s.get_permutation_seed()).hex()
                for s in order
            },
        })
    effective = preferred if preferred_as == "bytes" else []
    return {"servers": records, "preferred": preferred, "preferred_as": preferred_as,
            "preferred_effective": effective, "storage_indexes": sis}


def main():
    cases = [one_case(n, p, k, a) for (n, p, k, a) in [
        (1, 0, 2, "bytes"), (6, 0, 8, "bytes"), (12, 0, 8, "bytes"), (12, 3, 8, "bytes"),
        (12, 3, 8, "str"), (30, 0, 4, "bytes"), (7, 7, 3, "bytes"), (9, 2, 4, "str")]]
    out = {
        "tahoe_version": allmydata.__version__,
        "about": "StorageFarmBroker.get_servers_for_psi over servers from _make_storage_server; "
                 "permutation_seed/lease_seed hex as _parse_announcement derives them",
        "cases": cases,
    }
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "permute.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

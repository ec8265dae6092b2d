#!/usr/bin/env python
"""Differential vectors for cairn_core::placement, produced by Tahoe-LAFS 1.20's own code.

Run with the Tahoe venv:   /tmp/tahoe-venv/bin/python vectors/placement/generate_placement.py

Every placement case drives allmydata.immutable.upload.PeerSelector exactly the way
Tahoe2ServerSelector does (add_peer for each candidate in permuted order, mark_readonly_peer,
add_peer_with_share per get_buckets answer) and records get_share_placements(), i.e.
happiness_upload.share_placement(peers, readonly_peers, set(range(N)), existing_shares).
Server ids are small Python ints (see README.md for why), so set iteration order is
CPython's deterministic int-set order and the output is reproducible.
"""
import json
import os
import random
import sys

from allmydata.immutable.upload import PeerSelector
from allmydata.immutable.happiness_upload import calculate_happiness
from allmydata.util.happinessutil import servers_of_happiness, failure_message

HERE = os.path.dirname(os.path.abspath(__file__))


def placement_case(rng, case_id):
    n_shares = rng.randint(1, 20)
    n_servers = rng.randint(1, 25)
    if rng.random() < 0.5:
        servers = list(range(n_servers))           # the realistic form: position in permuted list
    else:
        servers = rng.sample(range(0, 300), n_servers)  # arbitrary ids, arbitrary order
    ro_prob = rng.choice([0.0, 0.0, 0.1, 0.3, 0.6, 0.9, 1.0])
    readonly = [s for s in servers if rng.random() < ro_prob]
    rng.shuffle(readonly)
    # existing shares: a random subset of servers answer get_buckets with some shares
    holder_prob = rng.choice([0.0, 0.2, 0.5, 0.8, 1.0])
    holders = [s for s in servers if rng.random() < holder_prob]
    rng.shuffle(holders)
    stale = rng.random() < 0.08
    existing = []
    for s in holders:
        k = rng.choice([1, 1, 2, 3, 5, n_shares])
        top = n_shares + (4 if stale else 0)
        shs = [rng.randrange(top) for _ in range(k)]   # duplicates across/within servers on purpose
        existing.extend((s, sh) for sh in shs)
    return run(case_id, n_shares, servers, readonly, existing)


def run(case_id, n_shares, servers, readonly, existing):
    ps = PeerSelector(1, n_shares, max(1, n_shares // 3), n_shares)
    for s in servers:
        ps.add_peer(s)
    for s in readonly:
        ps.mark_readonly_peer(s)
    for s, sh in existing:
        ps.add_peer_with_share(s, sh)
    placements = ps.get_share_placements()
    for k, v in placements.items():
        assert isinstance(k, int) and isinstance(v, int), (k, v)
    sharemap = {k: {v} for k, v in placements.items()}
    return {
        "id": case_id,
        "total_shares": n_shares,
        "servers": servers,
        "readonly": readonly,
        "existing": [list(x) for x in existing],
        "placements": sorted([k, v] for k, v in placements.items()),
        "happiness": calculate_happiness(placements),
        "servers_of_happiness": servers_of_happiness(sharemap),
    }


def soh_case(rng, case_id):
    n_shares = rng.randint(1, 20)
    n_servers = rng.randint(1, 25)
    servers = rng.sample(range(0, 300), n_servers)
    sharemap = {}
    for sh in rng.sample(range(n_shares + 3), rng.randint(0, n_shares)):
        sharemap[sh] = set(rng.sample(servers, rng.randint(1, min(4, n_servers))))
    return {
        "id": case_id,
        "sharemap": sorted([k, sorted(v)] for k, v in sharemap.items()),
        "servers_of_happiness": servers_of_happiness(sharemap),
    }


def main():
    rng = random.Random(20240611)
    placements = []
    # hand-picked layouts first (corner cases), then random ones
    fixed = [
        (1, [0], [], []),
        (10, [0], [], []),
        (10, [0, 1, 2], [0, 1, 2], [(0, 1)]),        # all read-only: Tahoe places nothing
        (3, [0, 1, 2], [0], [(0, 0), (0, 1), (0, 2)]),
        (4, [0, 1], [], [(0, 0), (1, 0)]),
        (5, list(range(10)), [], []),
        (10, list(range(5)), [], [(0, i) for i in range(10)]),
        (10, list(range(20)), [0, 1, 2], [(0, 9), (1, 9), (2, 9), (3, 9), (4, 17)]),
        (6, [0, 1, 2, 3], [1], [(1, 0), (1, 1), (2, 1), (3, 2), (3, 5)]),
        (20, list(range(25)), [], [(s, s % 20) for s in range(25)]),
        (20, [24, 3, 17, 9, 8, 16], [9, 16], [(8, 0), (8, 8), (16, 16), (9, 1), (3, 11)]),
        (3, [5, 13, 21], [], [(13, 0)]),
        # Tahoe reaches happiness 4 where 5 is possible (shares 2-4 stay doubled up on
        # server 8): found by the placement property test, which had claimed the optimum.
        (5, [8, 10, 11, 36, 54, 55], [55], [(8, 0), (8, 4), (8, 2), (8, 3), (55, 1), (10, 1), (11, 1)]),
    ]
    for n, servers, ro, ex in fixed:
        placements.append(run(len(placements), n, servers, ro, ex))
    while len(placements) < 400:
        placements.append(placement_case(rng, len(placements)))
    soh = [soh_case(rng, i) for i in range(200)]
    msgs = []
    for peer_count in range(0, 6):
        for k in (1, 3, 4):
            for happy in (1, 4, 7):
                for eff in sorted({0, min(peer_count, k - 1), peer_count}):
                    msgs.append({"peer_count": peer_count, "k": k, "happy": happy,
                                 "effective_happy": eff,
                                 "message": failure_message(peer_count, k, happy, eff)})
    out = {
        "generator": "vectors/placement/generate_placement.py",
        "tahoe": __import__("allmydata").__version__,
        "python": sys.version.split()[0],
        "placement": placements,
        "servers_of_happiness": soh,
        "failure_message": msgs,
    }
    with open(os.path.join(HERE, "placement.json"), "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("placement cases:", len(placements), "servers_of_happiness cases:", len(soh),
          "failure messages:", len(msgs))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate byte-exactness vectors for cairn's zfec-compatible erasure code.

Run with a Python that has zfec installed (zfec 1.6.x, as used by Tahoe-LAFS):

    python vectors/zfec/gen_zfec.py > vectors/zfec/zfec_vectors.json

Input pieces are not stored: they come from a tiny deterministic generator
that the Rust test (crates/cairn-core/tests/fec_vectors.rs) replicates:

    state = seed                       (unsigned 64-bit)
    for each byte:
        state = (state * 6364136223846793005 + 1442695040888963407) mod 2**64
        byte  = state >> 56
    the first k*piece_len bytes are split into k consecutive pieces.

Each output block (all n of them, in share-number order) is stored as lower
case hex when piece_len <= HEX_MAX, otherwise as the hex SHA-256 of the block.
Each case also records one k-subset ("decode_from": the last k share numbers)
for which zfec.Decoder was checked to give back the original pieces.
"""
import hashlib
import json
import sys

import zfec

HEX_MAX = 64
MUL = 6364136223846793005
INC = 1442695040888963407
MASK = (1 << 64) - 1

SHAPES = [
    (1, 1), (1, 3), (2, 3), (3, 10), (7, 200), (71, 255),
    (101, 256), (255, 256), (256, 256), (25, 100), (128, 256),
]
LENGTHS = [0, 1, 5, 64, 100, 1000]


def gen_bytes(seed, count):
    state = seed & MASK
    out = bytearray(count)
    for i in range(count):
        state = (state * MUL + INC) & MASK
        out[i] = state >> 56
    return bytes(out)


def main():
    cases = []
    for (k, n) in SHAPES:
        enc = zfec.Encoder(k, n)
        dec = zfec.Decoder(k, n)
        for plen in LENGTHS:
            seed = (k << 40) | (n << 24) | plen
            data = gen_bytes(seed, k * plen)
            pieces = [data[i * plen:(i + 1) * plen] for i in range(k)]
            blocks = enc.encode(pieces)
            assert len(blocks) == n
            for i in range(k):
                assert bytes(blocks[i]) == pieces[i]
            nums = list(range(n - k, n))
            got = dec.decode([blocks[i] for i in nums], nums)
            assert [bytes(b) for b in got] == pieces, (k, n, plen)
            if plen <= HEX_MAX:
                enc_blocks = {"hex": [bytes(b).hex() for b in blocks]}
            else:
                enc_blocks = {"sha256": [hashlib.sha256(bytes(b)).hexdigest() for b in blocks]}
            case = {"k": k, "n": n, "piece_len": plen, "seed": seed,
                    "decode_from": nums}
            case.update(enc_blocks)
            cases.append(case)
    doc = {
        "generator": "vectors/zfec/gen_zfec.py",
        "zfec_version": zfec.__version__,
        "rng": "state=seed; per byte: state=state*6364136223846793005+1442695040888963407 mod 2^64; byte=state>>56",
        "cases": cases,
    }
    # One case per line keeps diffs of regenerated vectors readable.
    out = sys.stdout
    out.write("{\n")
    for key in ("generator", "zfec_version", "rng"):
        out.write("%s: %s,\n" % (json.dumps(key), json.dumps(doc[key])))
    out.write('"cases": [\n')
    out.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
    out.write("\n]\n}\n")


if __name__ == "__main__":
    main()

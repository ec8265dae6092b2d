#!/usr/bin/env python3
"""
Golden vectors for directories (`dirnode.json`), made by the real Tahoe-LAFS 1.20 code.

Run from the repository root with the Python that has tahoe-lafs installed:

    .venv-tahoe/bin/python vectors/generate_dirnode.py

What it records, each value from Tahoe's own functions (nothing re-implemented here):
- `json_floats`: `json.dumps(x)` (Python's float repr) for doubles of every magnitude,
  random bit patterns and the notation boundaries; `json_values`: `json.dumps(json.loads(t))`
  for texts with unicode, escapes, repeated keys, big integers, nesting.
- `rwcaps`: `dirnode._encrypt_rw_uri(writekey, rw_uri)`, the sealed write cap of a child.
- `metadata_updates`: `dirnode.update_metadata(old, new, now)`, the link times an edit sets.
- `bodies`: `dirnode.pack_children(children, writekey, deep_immutable)` for children made by
  `NodeMaker.create_from_cap` from real caps (CHK, LIT, SSK, MDMF, DIR2 of each kind, and
  caps of unknown kinds with and without `ro.`/`imm.` prefixes), with metadata, unicode names
  given in NFC and NFD; each with what Tahoe's node reports as the child's write and
  read-only cap (the input of the packing) and the body bytes.

Deterministic: the random doubles come from a fixed seed, so a re-run writes the same file.
"""

import json
import os
import random
import struct
import sys
import unicodedata

import allmydata
from allmydata import dirnode
from allmydata.nodemaker import NodeMaker

HERE = os.path.dirname(os.path.abspath(__file__))


def floats():
    rng = random.Random(20261207)
    xs = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 2.0 ** 53, 2.0 ** 53 + 2, 1e22, 1e23,
          5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1733600000.123456]
    for e in range(-8, 20):
        for m in (1.0, 1.5, 9.999999999999999, 1.2345678901234567):
            v = m * 10.0 ** e
            xs += [v, -v]
        # the neighbours of each power of ten, where the notation switches
        p = 10.0 ** e
        xs += [p, struct.unpack("<d", struct.pack("<q", struct.unpack("<q", struct.pack("<d", p))[0] - 1))[0],
               struct.unpack("<d", struct.pack("<q", struct.unpack("<q", struct.pack("<d", p))[0] + 1))[0]]
    for _ in range(1500):
        bits = rng.getrandbits(64)
        v = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if v != v or v in (float("inf"), float("-inf")):
            continue
        xs.append(v)
    for _ in range(500):
        xs.append(rng.uniform(1.0e9, 2.0e9))  # time.time()-like, as linkcrtime holds
    for _ in range(200):
        xs.append(rng.random() * 10.0 ** rng.randint(-10, 25))
    out = []
    for v in xs:
        out.append([struct.pack(">d", v).hex(), json.dumps(v)])
    return out


JSON_TEXTS = [
    '{}', '[]', '{"tahoe": {"linkcrtime": 1733600000.123456, "linkmotime": 1733600001.5}}',
    '{"b": 1, "a": 2, "b": 3}', '{"k": [1, 2.0, -3e-7, true, false, null, "s"]}',
    '{"name": "caf\\u00e9", "emoji": "\\ud83d\\ude00", "raw": "\u00e9\u4e2d"}',
    '{"esc": "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u007f"}',
    '{"big": 123456789012345678901234567890, "neg": -0, "e": 1E3, "f": 1.0e+2}',
    '  {  "spaced"  :  [ 1 , 2 ]  }  ', '{"nan": NaN, "inf": Infinity, "ninf": -Infinity}',
    '[[[[[[["deep"]]]]]]]', '{"": ""}', '"just a string"', '12', '-1.5',
]


def json_values():
    return [[t, json.dumps(json.loads(t))] for t in JSON_TEXTS]


def caps():
    """Real caps from the other vector files, plus ones of unknown kinds."""
    chk = json.load(open(os.path.join(HERE, "chk_caps.json")))["cases"]
    mut = json.load(open(os.path.join(HERE, "mutable_caps.json")))["cases"]
    lit = next(c["cap"] for c in chk if c["cap"].startswith("URI:LIT:"))
    chks = [c["cap"] for c in chk if c["cap"].startswith("URI:CHK:")][:2]
    sdmf = next(c for c in mut if c["format"] == "sdmf")
    mdmf = next(c for c in mut if c["format"] == "mdmf")
    out = {
        "lit": (None, lit),
        "chk": (None, chks[0]),
        "chk2": (None, chks[1]),
        "sdmf_rw": (sdmf["writecap"], sdmf["readcap"]),
        "sdmf_ro": (None, sdmf["readcap"]),
        "mdmf_rw": (mdmf["writecap"], mdmf["readcap"]),
        "unknown_rw": ("x-tahoe-future-test-writeable:foo", "x-tahoe-future-test-readonly:bar"),
        "unknown_ro": (None, "ro.x-tahoe-future-test-readonly:baz"),
        "unknown_imm": (None, "imm.x-tahoe-future-test-immutable:qux"),
    }
    # Directory caps over the same keys (DIR2 = SDMF, DIR2-MDMF), as Tahoe derives them.
    for name, c in (("dir_sdmf", sdmf), ("dir_mdmf", mdmf)):
        rw = c["writecap"].replace("URI:SSK:", "URI:DIR2:").replace("URI:MDMF:", "URI:DIR2-MDMF:")
        ro = c["readcap"].replace("URI:SSK-RO:", "URI:DIR2-RO:").replace("URI:MDMF-RO:", "URI:DIR2-MDMF-RO:")
        out[name] = (rw, ro)
    out["dir_chk"] = (None, chks[0].replace("URI:CHK:", "URI:DIR2-CHK:"))
    out["dir_lit"] = (None, lit.replace("URI:LIT:", "URI:DIR2-LIT:"))
    return out


def b(s):
    return None if s is None else s.encode("ascii")


def bodies():
    nm = NodeMaker(None, None, None, None, None, {"k": 3, "n": 10, "happy": 7,
                                                  "max_segment_size": 128 * 1024},
                   None, None)
    C = caps()
    writekey = bytes(range(16))
    meta_a = {"tahoe": {"linkcrtime": 1733600000.123456, "linkmotime": 1733600001.5}}
    meta_b = {"mtime": 1234567890, "ctime": 1.5e-05, "note": "caf\u00e9 \U0001f600",
              "tahoe": {"linkcrtime": 1.0}}
    sets = {
        "mutable_mixed": (writekey, False, [
            ("file.txt", "chk", meta_a), ("tiny", "lit", {}), ("mutable", "sdmf_rw", meta_b),
            ("readonly", "sdmf_ro", {}), ("mdmf", "mdmf_rw", meta_a), ("subdir", "dir_sdmf", {}),
            ("mdmf dir", "dir_mdmf", {}), ("frozen", "dir_chk", {}), ("frozen-lit", "dir_lit", {}),
            ("future", "unknown_rw", {}), ("future-ro", "unknown_ro", {}),
            ("future-imm", "unknown_imm", {}),
        ]),
        "mutable_unicode": (bytes([0xAB] * 16), False, [
            ("caf\u00e9", "chk", {}),                                    # NFC
            (unicodedata.normalize("NFD", "na\u00efve"), "lit", {}),     # NFD in, NFC stored
            ("\u4e2d\u6587", "chk2", meta_b), ("Z-last", "lit", {}), ("a b,c:d", "chk", {}),
        ]),
        "immutable": (None, True, [
            ("file.txt", "chk", meta_a), ("tiny", "lit", {}), ("frozen", "dir_chk", {}),
            ("frozen-lit", "dir_lit", {}), ("future-imm", "unknown_imm", {}),
            (unicodedata.normalize("NFD", "r\u00e9sum\u00e9"), "chk2", meta_b),
        ]),
        "empty_mutable": (writekey, False, []),
    }
    out = []
    for label, (wk, deep, kids) in sets.items():
        children, listed = {}, []
        for name, capname, meta in kids:
            rw, ro = C[capname]
            node = nm.create_from_cap(b(rw), b(ro), deep_immutable=deep, name=name)
            children[name] = (node, meta)
            listed.append({
                "name": name,
                "cap": capname,
                # what the packing reads from the node: its write and read-only cap
                "rw_uri": (node.get_write_uri() or b"").decode("ascii"),
                "ro_uri": (node.get_readonly_uri() or b"").decode("ascii"),
                "metadata_json": json.dumps(meta),
            })
        body = dirnode.pack_children(children, wk, deep_immutable=deep)
        out.append({
            "label": label,
            "writekey_hex": None if wk is None else wk.hex(),
            "deep_immutable": deep,
            "children": listed,
            "body_hex": body.hex(),
        })
    return out


def rwcaps():
    out = []
    for wk, cap in ((bytes(16), b"URI:SSK:aaaa:bbbb"), (bytes(range(16)), b""),
                    (bytes([0xFF] * 16), b"x-tahoe-future-test-writeable:foo" * 5)):
        out.append({"writekey_hex": wk.hex(), "rw_uri": cap.decode(),
                    "sealed_hex": dirnode._encrypt_rw_uri(wk, cap).hex()})
    return out


METADATA_UPDATES = [
    (None, None, 1733600000.25),
    (None, '{"a": 1}', 5.0),
    ('{"tahoe": {"linkcrtime": 1.5, "linkmotime": 2.5}}', None, 3.0),
    ('{"tahoe": {"linkcrtime": 1.5, "linkmotime": 2.5}, "x": 1}', '{"y": 2, "tahoe": {"z": 0}}', 4.0),
    ('{"ctime": 7, "mtime": 8}', None, 9.0),
    ('{"ctime": 7}', '{"new": true}', 9.0),
    ('{"tahoe": {}, "z": 1}', None, 2.0),
    ('{"tahoe": {"linkmotime": 1.0, "extra": "kept"}}', '{}', 6.0),
]


def metadata_updates():
    """`dirnode.update_metadata(old, new, now)`: the link times Tahoe sets."""
    out = []
    for old, new, now in METADATA_UPDATES:
        md = dirnode.update_metadata(None if old is None else json.loads(old),
                                     None if new is None else json.loads(new), now)
        out.append({"old": old, "new": new, "now": now, "result": json.dumps(md)})
    return out


def main():
    out = {
        "tahoe_version": allmydata.__version__,
        "json_floats": floats(),
        "json_values": json_values(),
        "rwcaps": rwcaps(),
        "bodies": bodies(),
        "metadata_updates": metadata_updates(),
    }
    path = os.path.join(HERE, "dirnode.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)), file=sys.stderr)


if __name__ == "__main__":
    main()

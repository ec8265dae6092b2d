#!/usr/bin/env python3
"""
Generate golden test vectors for cairn by running the real Tahoe-LAFS code.

Run from the repository root with the Python that has tahoe-lafs installed:

    /tmp/tahoe-venv/bin/python vectors/generate.py

Every value written here is produced by Tahoe-LAFS's own code paths
(allmydata.util.hashutil, allmydata.util.base32, allmydata.hashtree,
allmydata.uri, allmydata.crypto.*, the real immutable Uploader / Encoder /
WriteBucketProxy pipeline, the real NodeMaker / MutableFileNode / Publish
pipeline writing into real allmydata.storage.server.StorageServer instances,
and the real `tahoe debug dump-cap` CLI command).  The only things this
script replaces are *sources of randomness* in the mutable publish path (see
README.md, "Reproducibility"), so that reruns produce identical files.

Options:
  --only NAME[,NAME...]   generate only some outputs (kat, chk_caps,
                          chk_shares, mutable_caps, mutable_shares, caps)
  --check-integration Y   also check our derivations against Tahoe's
                          integration/vectors/test_vectors.yaml (file from the
                          tahoe-lafs git repository; not in the PyPI package)
  --random-signatures     use Tahoe's own (randomized) RSA-PSS signing instead
                          of the deterministic-salt signer; output then differs
                          between runs
"""

import argparse
import base64
import hashlib
import inspect
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_DIR = os.path.join(HERE, "mutable_keys")

# --------------------------------------------------------------------------
# Tahoe imports

import allmydata
from allmydata import uri, hashtree, client
from allmydata.util import hashutil, base32, netstring as netstring_mod
from allmydata.util.consumer import download_to_data
from allmydata.crypto import aes, rsa
from allmydata.immutable import upload, layout as imm_layout
from allmydata.mutable import common as mut_common
from allmydata.mutable import publish as mut_publish
from allmydata.mutable.publish import MutableData
from allmydata.interfaces import SDMF_VERSION, MDMF_VERSION
from allmydata.nodemaker import NodeMaker
from allmydata.storage_client import StorageFarmBroker
from allmydata.storage.server import StorageServer, FoolscapStorageServer, si_b2a
from allmydata.node import config_from_string
from allmydata.scripts import runner as tahoe_runner
from allmydata.dirnode import pack_children

from twisted.internet import defer, task
from twisted.application import service
from foolscap.api import fireEventually

from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from cryptography.hazmat.primitives import serialization

TAHOE_VERSION = allmydata.__version__


# --------------------------------------------------------------------------
# small helpers

def hx(b):
    return None if b is None else bytes(b).hex()


def b64(b):
    return None if b is None else base64.b64encode(bytes(b)).decode("ascii")


def s(b):
    """bytes -> str (ascii)"""
    return None if b is None else (b.decode("ascii") if isinstance(b, bytes) else b)


def stretch(seed, size):
    """Tahoe integration/vectors stretch(): seed repeated, truncated."""
    if size == 0:
        return b""
    return (seed * (size // len(seed) + 1))[:size]


def sha256(b):
    return hashlib.sha256(b).digest()


def log(msg):
    print("[%7.1fs] %s" % (time.time() - T0, msg), flush=True)


def write_json(name, obj):
    path = os.path.join(HERE, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
    log("wrote %s (%d bytes)" % (name, os.path.getsize(path)))


class Drbg:
    """Deterministic byte source: SHA-256(label || counter), concatenated."""

    def __init__(self, label):
        self.label = label if isinstance(label, bytes) else label.encode()
        self.counter = 0
        self.buf = b""
        self.lock = threading.Lock()

    def take(self, n):
        with self.lock:
            while len(self.buf) < n:
                self.buf += sha256(self.label + b":" + str(self.counter).encode())
                self.counter += 1
            out, self.buf = self.buf[:n], self.buf[n:]
            return out


def varied_bytes(n, salt=0):
    """Deterministic, non-repeating-looking test bytes."""
    d = Drbg(b"cairn-varied-%d-%d" % (salt, n))
    return d.take(n)


T0 = time.time()


# ==========================================================================
# 1. kat.json
# ==========================================================================

def gen_kat():
    out = {"tahoe_version": TAHOE_VERSION}

    # ---- tagged_hash
    th_cases = [
        (b"tag", b"hello world", None),           # test_well_known_tagged_hash
        (b"different", b"hello world", None),
        (b"different", b"goodbye world", None),
        (b"tag1", b"value", None),                # test_sha256d
        (b"tag1", b"value", 16),                  # test_sha256d_truncated
        (b"", b"", None),
        (b"tag", b"", None),
        (b"", b"value", None),
        (b"tag", b"", 16),
        (b"long value", varied_bytes(1000, 1), None),
        (b"long value", varied_bytes(10000, 2), 16),
        (varied_bytes(200, 3), b"long binary tag", None),
        (b"\x00\xff:,", b"\x00" * 64, 20),
        (b"trunc", b"x", 1),
        (b"trunc", b"x", 31),
        (b"trunc", b"x", 32),
        # NB: truncate_to=0 is falsy in _SHA256d_Hasher -> NO truncation
        (b"trunc", b"x", 0),
        (hashutil.STORAGE_INDEX_TAG, b"x" * 16, 16),
    ]
    out["tagged_hash"] = [
        {"tag": hx(t), "value": hx(v), "truncate": tr,
         "out": hx(hashutil.tagged_hash(t, v, tr))}
        for (t, v, tr) in th_cases
    ]
    # cross-check the streaming hasher
    for (t, v, tr) in th_cases:
        h = hashutil.tagged_hasher(t, tr)
        h.update(v[:7]); h.update(v[7:])
        assert h.digest() == hashutil.tagged_hash(t, v, tr)
    assert base32.b2a(hashutil.tagged_hash(b"tag", b"hello world")) == \
        b"yra322btzoqjp4ts2jon5dztgnilcdg6jgztgk7joi6qpjkitg2q"

    # ---- tagged_pair_hash
    tp_cases = [
        (b"tag", b"hello", b"world", None),       # test_well_known_tagged_pair_hash
        (b"different", b"hello", b"world", None),
        (b"different", b"goodbye", b"world", None),
        (b"", b"", b"", None),
        (b"tag", b"", b"b", None),
        (b"tag", b"a", b"", None),
        (b"tag", b"ab", b"c", None),
        (b"tag", b"a", b"bc", None),              # must differ from the previous
        (b"tag", b"a", b"b", 16),
        (b"Merkle tree internal node", b"\x11" * 32, b"\x22" * 32, None),
        (b"long", varied_bytes(5000, 4), varied_bytes(300, 5), None),
        (b"trunc0", b"a", b"b", 0),
    ]
    out["tagged_pair_hash"] = [
        {"tag": hx(t), "a": hx(a), "b": hx(b), "truncate": tr,
         "out": hx(hashutil.tagged_pair_hash(t, a, b, tr))}
        for (t, a, b, tr) in tp_cases
    ]
    assert base32.b2a(hashutil.tagged_pair_hash(b"tag", b"hello", b"world")) == \
        b"wmto44q3shtezwggku2fxztfkwibvznkfu6clatnvfog527sb6dq"

    # ---- hmac (Tahoe's non-RFC2104 hmac)
    hm_cases = [
        (b"tag", b""),
        (b"", b""),
        (b"", b"data"),
        (b"key", b"The quick brown fox jumps over the lazy dog"),
        (varied_bytes(16, 6), varied_bytes(100, 7)),
        (varied_bytes(32, 8), b""),
        (varied_bytes(63, 9), b"abc"),
        (varied_bytes(64, 10), b"abc"),
        (varied_bytes(65, 11), b"abc"),
        (varied_bytes(100, 12), varied_bytes(1000, 13)),
        (varied_bytes(200, 14), b"x"),
    ]
    out["hmac"] = [{"key": hx(k), "data": hx(d), "out": hx(hashutil.hmac(k, d))}
                   for (k, d) in hm_cases]
    assert base32.b2a(hashutil.hmac(b"tag", b"")) == \
        b"c54ypfi6pevb3nvo6ba42jtglpkry2kbdopqsi7dgrm4r7tw5sra"

    # ---- base32
    b32 = []
    for n in range(0, 41):
        data = varied_bytes(n, 15)
        b32.append({"bytes": hx(data), "text": s(base32.b2a(data))})
    for n in (1, 2, 3, 4, 5, 16, 20, 32):
        for fill in (b"\x00", b"\xff"):
            b32.append({"bytes": hx(fill * n), "text": s(base32.b2a(fill * n))})
    for e in b32:
        data = bytes.fromhex(e["bytes"])
        assert base32.could_be_base32_encoded(e["text"].encode())
        assert base32.a2b(e["text"].encode()) == data
    out["base32"] = b32

    invalid = [
        "a", "abc", "abcdef", "aaaaaaaaa",          # bad lengths (len % 8 in {1,3,6})
        "ab", "ad", "aaab", "aaaaaab",               # non-zero low unused trailing bit
        "aaaaaaaaab", "77",                          # (10 chars -> 6 bytes; "77")
        "a0", "a1", "a8", "a9", "aa==", "a=", "aaaaaaa=",   # bad characters / padding
        "AA", "aA", "Aa", "MFRGG", "MFRGGZDF",      # uppercase
        "a a", "aa ", " aa", "aa\n", "a-", "a_",
    ]
    for t in invalid:
        assert not base32.could_be_base32_encoded(t.encode()), t
    out["base32_invalid"] = invalid
    # could_be_base32_encoded() only requires the lowest (unused-1) bits of the
    # last character to be zero (off by one), so some non-canonical strings
    # pass it and a2b() silently drops the extra bit.  Record them.
    lenient = []
    for q in (2, 4, 5, 7, 10, 13):
        for c in "abcdefghijklmnopqrstuvwxyz234567":
            t = ("a" * (q - 2) + "m" + c).encode() if q > 1 else c.encode()
            if base32.could_be_base32_encoded(t):
                data = base32.a2b(t)
                if base32.b2a(data) != t:
                    lenient.append({"text": s(t), "bytes": hx(data), "canonical_text": s(base32.b2a(data))})
    out["base32_noncanonical_accepted"] = lenient
    out["base32_valid_edge"] = [t for t in ["", "aa", "ae", "aq", "a4", "aaaq", "aaaaa", "aaaaaaa", "aaaaaaaa"]
                                if base32.could_be_base32_encoded(t.encode())]

    # ---- netstring
    ns_in = [b"", b"a", b"hello world", b"0:,", b":,:,", varied_bytes(9, 16),
             varied_bytes(10, 17), varied_bytes(100, 18), varied_bytes(1000, 19)]
    out["netstring"] = [{"in": hx(x), "out": hx(netstring_mod.netstring(x))} for x in ns_in]

    # ---- derivations: every public function in hashutil
    D = []
    derr = []

    def add(fn, *args, int_args=None):
        f = getattr(hashutil, fn)
        if int_args is not None:
            res = f(*int_args, *args)
        else:
            res = f(*args)
        e = {"fn": fn, "args": [hx(a) for a in args], "out": hx(res)}
        if int_args is not None:
            e = {"fn": fn, "int_args": [str(i) for i in int_args],
                 "args": [hx(a) for a in args], "out": hx(res)}
        D.append(e)
        return res

    seed20 = bytes(range(20))
    for v in (b"", b"x" * 16, varied_bytes(16, 20)):
        add("storage_index_hash", v)
    for fn in ("block_hash", "uri_extension_hash", "plaintext_hash", "crypttext_hash",
               "crypttext_segment_hash", "plaintext_segment_hash", "backupdb_dirhash"):
        add(fn, b"")
        add(fn, b"foo")
        add(fn, varied_bytes(4097, 21))
    # convergence_hash(k, n, segsize, data, convergence)
    conv_cases = [
        ((3, 10, 100), b"", b"converge"),                 # test_known_answers
        ((3, 10, 1000), b"data", b"secret"),              # test_chk
        ((3, 10, 1024), b"", b"\x42" * 16),               # test_convergence_hasher_tag params
        ((1, 1, 56), stretch(b"a", 56), b"aaaaaaaaaaaaaaaa"),
        ((3, 10, 57), stretch(b"a", 56), b"aaaaaaaaaaaaaaaa"),
        ((3, 10, 131073), varied_bytes(1000, 22), sha256(b"Hello world")[:16]),
        ((101, 256, 131128), b"x", b""),
        ((256, 256, 1), b"y", varied_bytes(32, 23)),
        ((1, 256, 2**40), b"z", varied_bytes(100, 24)),
        ((2, 3, 0), b"", b"aaaaaaaaaaaaaaaa"),
    ]
    for ints, data, conv in conv_cases:
        add("convergence_hash", data, conv, int_args=ints)
    for ints in ((4, 3, 100), (0, 3, 100), (3, 0, 100), (3, 257, 100), (257, 257, 100)):
        try:
            hashutil.convergence_hash(*ints, b"", b"s")
            raise AssertionError("expected ValueError")
        except ValueError as e:
            derr.append({"fn": "convergence_hash", "int_args": [str(i) for i in ints],
                         "args": [hx(b""), hx(b"s")], "error": "ValueError", "message": str(e)})
    convergence_tags = []
    for ints, data, conv in conv_cases[:4]:
        tag = hashutil._convergence_hasher_tag(*ints, conv)
        convergence_tags.append({"int_args": [str(i) for i in ints], "convergence": hx(conv),
                                 "tag": hx(tag)})
    assert hashutil._convergence_hasher_tag(3, 10, 1024, b"\x42" * 16) == (
        b"allmydata_immutable_content_to_key_with_added_secret_v1+"
        b"16:\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42\x42,"
        b"9:3,10,1024,")
    for sec in (b"", b"lease secret", varied_bytes(32, 25)):
        add("my_renewal_secret_hash", sec)
        add("my_cancel_secret_hash", sec)
    for a, b_ in ((b"", b"si"), (varied_bytes(32, 26), varied_bytes(16, 27))):
        add("file_renewal_secret_hash", a, b_)
        add("file_cancel_secret_hash", a, b_)
    for a, b_ in ((b"", b"\x00" * 20), (varied_bytes(32, 28), seed20)):
        add("bucket_renewal_secret_hash", a, b_)
        add("bucket_cancel_secret_hash", a, b_)
    add("hmac", b"tag", b"")
    add("hmac", varied_bytes(70, 29), b"data")
    add("mutable_rwcap_key_hash", b"iv", b"wk")
    add("mutable_rwcap_key_hash", varied_bytes(16, 30), varied_bytes(16, 31))
    add("mutable_rwcap_salt_hash", b"")
    add("mutable_rwcap_salt_hash", b"URI:CHK:aaaa")
    add("mutable_rwcap_salt_hash", varied_bytes(16, 32))
    for v in (b"", varied_bytes(1217, 33)):
        add("ssk_writekey_hash", v)
    for v in (b"", varied_bytes(16, 34)):
        add("ssk_write_enabler_master_hash", v)
        add("ssk_readkey_hash", v)
        add("ssk_storage_index_hash", v)
    add("ssk_write_enabler_hash", b"wk", b"\x00" * 20)
    add("ssk_write_enabler_hash", varied_bytes(16, 35), seed20)
    for v in (b"", varied_bytes(294, 36)):
        add("ssk_pubkey_fingerprint_hash", v)
    add("ssk_readkey_data_hash", b"iv", b"rk")
    add("ssk_readkey_data_hash", varied_bytes(16, 37), varied_bytes(16, 38))
    add("permute_server_hash", b"SI", base32.a2b(b"u33m4y7klhz3bypswqkozwetvabelhxt"))
    add("permute_server_hash", varied_bytes(16, 39), b"")
    add("permute_server_hash", varied_bytes(16, 40), base32.b2a(varied_bytes(20, 41)))
    add("tagged_hash", b"tag", b"hello world")
    add("tagged_pair_hash", b"tag", b"hello", b"world")

    # Known answers from allmydata/test/test_hashutil.py (sanity check)
    kas = {
        ("block_hash", ("",)): "msjr5bh4evuh7fa3zw7uovixfbvlnstr5b65mrerwfnvjxig2jvq",
        ("uri_extension_hash", ("",)): "wthsu45q7zewac2mnivoaa4ulh5xvbzdmsbuyztq2a5fzxdrnkka",
        ("my_renewal_secret_hash", ("",)): "ujhr5k5f7ypkp67jkpx6jl4p47pyta7hu5m527cpcgvkafsefm6q",
        ("ssk_writekey_hash", ("",)): "ykpgmdbpgbb6yqz5oluw2q26ye",
        ("ssk_readkey_data_hash", ("6976", "726b")): "73wsaldnvdzqaf7v4pzbr2ae5a",
        ("mutable_rwcap_key_hash", ("6976", "776b")): "6rvn2iqrghii5n4jbbwwqqsnqu",
        ("storage_index_hash", ("",)): "qb5igbhcc5esa6lwqorsy7e6am",
    }
    for e in D:
        key = (e["fn"], tuple(e["args"]))
        if key in kas:
            assert s(base32.b2a(bytes.fromhex(e["out"]))) == kas.pop(key), key
    assert not kas, kas
    assert base32.b2a(hashutil.convergence_hash(3, 10, 100, b"", b"converge")) == b"3mo6ni7xweplycin6nowynw2we"
    assert base32.b2a(hashutil.permute_server_hash(b"SI", base32.a2b(b"u33m4y7klhz3bypswqkozwetvabelhxt"))) == \
        b"kb4354zeeurpo3ze5e275wzbynm6hlap"

    # Make sure we covered every public function in hashutil.
    NOT_COVERED = {
        # streaming hashers: same output as the one-shot functions
        "tagged_hasher", "block_hasher", "uri_extension_hasher", "plaintext_hasher",
        "crypttext_hasher", "crypttext_segment_hasher", "plaintext_segment_hasher",
        "convergence_hasher",
        # random / non-deterministic
        "random_key", "timing_safe_compare",
        # imported helpers, not hash functions
        "netstring", "byteschr",
    }
    covered = {e["fn"] for e in D}
    funcs = {n for n, o in vars(hashutil).items()
             if callable(o) and not n.startswith("_") and not inspect.isclass(o)}
    missing = funcs - covered - NOT_COVERED
    assert not missing, missing
    out["derivations"] = D
    out["derivation_errors"] = derr
    out["convergence_hasher_tag"] = convergence_tags

    # ---- tags
    out["tags"] = {n: s(v) for n, v in sorted(vars(hashutil).items())
                   if n.endswith("_TAG") and isinstance(v, bytes)}
    out["other_tags"] = {
        "hashtree.empty_leaf_hash": "Merkle tree empty leaf",
        "hashtree.pair_hash": "Merkle tree internal node",
    }
    assert hashtree.empty_leaf_hash(3) == hashutil.tagged_hash(b"Merkle tree empty leaf", b"3")
    assert hashtree.pair_hash(b"a", b"b") == hashutil.tagged_pair_hash(b"Merkle tree internal node", b"a", b"b")

    # ---- hash trees
    out["empty_leaf_hash"] = [{"i": i, "out": hx(hashtree.empty_leaf_hash(i))}
                              for i in list(range(0, 18)) + [31, 255, 1000]]
    trees = []
    for nleaves in (0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17):
        leaves = [hashutil.tagged_hash(b"tag", b"%d" % i) for i in range(nleaves)]
        t = hashtree.HashTree(leaves)
        needed = []
        for leaf in range(max(nleaves, 1)):
            for inc in (False, True):
                needed.append({"leaf": leaf, "include_leaf": inc,
                               "indices": sorted(t.needed_hashes(leaf, include_leaf=inc))})
        trees.append({"leaves": [hx(l) for l in leaves], "nodes": [hx(n) for n in t],
                      "needed": needed})
    # test_hashtree.test_well_known_tree: 3 leaves of tagged_hash("tag", "0".."2")
    assert [s(base32.b2a(bytes.fromhex(x))) for x in trees[3]["nodes"]] == [
        "vxuqudnucceja4pqkdqy5txapagxubm5moupzqywkbg2jrjkaola",
        "weycjri4jlcaunca2jyx2kr7sbtb7qdriog3f26g5jpc5awfeazq",
        "5ovy3g2wwjnxoqtja4licckxkbqjef4xsjtclk6gxnsl66kvow6a",
        "esd34nbzri75l3j2vwetpk3dvlvsxstkbaktomonrulpks3df3sq",
        "jkxbwa2tppyfax35o72tbjecxvaa4xphma6zbyfbkkku3ed2657a",
        "wfisavaqgab2raihe7dld2qjps4rtxyiubgfs5enziokey2msjwa",
        "t3kza5vwx3tlowdemmgdyigp62ju57qduyfh7uulnfkc7mj2ncrq"]
    assert set(hashtree.HashTree([bytes.fromhex(x) for x in trees[7]["leaves"]]).needed_hashes(7, True)) == {14, 13, 5, 1}
    out["hashtree"] = trees

    # ---- AES-128/256-CTR via allmydata.crypto.aes (default IV = 16 zero bytes)
    ac = []
    for keylen in (16, 32):
        key = varied_bytes(keylen, 42 + keylen)
        for n in (0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 4101):
            pt = varied_bytes(n, 100 + n)
            enc = aes.create_encryptor(key)
            ct = aes.encrypt_data(enc, pt)
            dec = aes.create_decryptor(key)
            assert aes.decrypt_data(dec, ct) == pt
            ac.append({"key": hx(key), "iv": hx(b"\x00" * 16), "plaintext": hx(pt), "ciphertext": hx(ct)})
    # an all-zero key / zero plaintext keystream, and one chunked encryption
    key = b"\x00" * 16
    ac.append({"key": hx(key), "iv": hx(b"\x00" * 16), "plaintext": hx(b"\x00" * 64),
               "ciphertext": hx(aes.encrypt_data(aes.create_encryptor(key), b"\x00" * 64))})
    key = varied_bytes(16, 77)
    enc = aes.create_encryptor(key)
    pt = varied_bytes(300, 78)
    ct = aes.encrypt_data(enc, pt[:7]) + aes.encrypt_data(enc, pt[7:100]) + aes.encrypt_data(enc, pt[100:])
    ac.append({"key": hx(key), "iv": hx(b"\x00" * 16), "plaintext": hx(pt), "ciphertext": hx(ct)})
    # non-zero IVs (Tahoe never uses these for file data, but the API allows them)
    for iv in (b"\x00" * 15 + b"\x01", b"\xff" * 16):
        pt = varied_bytes(50, 79)
        ct = aes.encrypt_data(aes.create_encryptor(key, iv), pt)
        ac.append({"key": hx(key), "iv": hx(iv), "plaintext": hx(pt), "ciphertext": hx(ct)})
    out["aes_ctr"] = ac

    # ---- permute_server_hash
    ps = []
    psi_seed = [
        (b"SI", base32.a2b(b"u33m4y7klhz3bypswqkozwetvabelhxt")),
        (b"", b""),
        (varied_bytes(16, 80), varied_bytes(20, 81)),
        (varied_bytes(16, 82), base32.b2a(varied_bytes(20, 83))),   # b32 text seed (fresh servers)
        (varied_bytes(16, 84), varied_bytes(32, 85)),
    ]
    for psi, seed in psi_seed:
        ps.append({"peer_selection_index": hx(psi), "seed": hx(seed),
                   "out": hx(hashutil.permute_server_hash(psi, seed))})
    out["permute_server_hash"] = ps

    # ---- UEB pack/unpack (uri.pack_extension)
    ueb = {"codec_name": b"crs", "codec_params": b"57-3-10", "crypttext_hash": b"\x01" * 32,
           "crypttext_root_hash": b"\x02" * 32, "needed_shares": 3, "num_segments": 1,
           "segment_size": 57, "share_root_hash": b"\x03" * 32, "size": 56,
           "tail_codec_params": b"57-3-10", "total_shares": 10}
    packed = uri.pack_extension(ueb)
    out["pack_extension"] = [{
        "fields": {k: (v if isinstance(v, int) else hx(v)) for k, v in ueb.items()},
        "int_fields": sorted(k for k, v in ueb.items() if isinstance(v, int)),
        "out": hx(packed),
        "uri_extension_hash": hx(hashutil.uri_extension_hash(packed)),
    }]
    write_json("kat.json", out)


# ==========================================================================
# Immutable (CHK) upload harness: real Uploader -> CHKUploader -> Encoder ->
# WriteBucketProxy, writing into fake remote bucket writers that record bytes.
# ==========================================================================

class FakeBucketWriter(object):
    """Records the bytes the WriteBucketProxy sends (like test_upload's)."""

    def __init__(self, grid, si, shnum, allocated_size):
        self.grid, self.si, self.shnum = grid, si, shnum
        self.allocated_size = allocated_size
        self.data = io.BytesIO()
        self.closed = False

    def callRemote(self, methname, *args, **kwargs):
        d = fireEventually()
        d.addCallback(lambda _: getattr(self, "remote_" + methname)(*args, **kwargs))
        return d

    def callRemoteOnly(self, methname, *args, **kwargs):
        self.callRemote(methname, *args, **kwargs)

    def remote_write(self, offset, data):
        assert not self.closed
        assert offset >= 0 and offset + len(data) <= self.allocated_size, \
            (offset, len(data), self.allocated_size)
        self.grid.write_log.append((self.shnum, offset, len(data)))
        self.data.seek(offset)
        self.data.write(data)

    def remote_close(self):
        assert not self.closed
        self.closed = True
        share = self.data.getvalue()
        assert len(share) == self.allocated_size, (len(share), self.allocated_size)
        self.grid.shares[(self.si, self.shnum)] = share

    def remote_abort(self):
        raise AssertionError("upload aborted")


class FakeBucketReader(object):
    def __init__(self, data):
        self.data = data

    def callRemote(self, methname, *args, **kwargs):
        d = fireEventually()
        d.addCallback(lambda _: getattr(self, "remote_" + methname)(*args, **kwargs))
        return d

    def remote_read(self, offset, length):
        return self.data[offset:offset + length]

    def remote_advise_corrupt_share(self, reason):
        raise AssertionError("share reported corrupt: %r" % (reason,))


class FakeImmutableServer(object):
    def __init__(self, grid):
        self.grid = grid
        self.version = {
            b"http://allmydata.org/tahoe/protocols/storage/v1": {
                b"maximum-immutable-share-size": 2 ** 64 - 1,
                b"maximum-mutable-share-size": 2 ** 64 - 1,
                b"available-space": 2 ** 64 - 1,
                b"tolerates-immutable-read-overrun": True,
                b"delete-mutable-shares-with-zero-length-writev": True,
                b"fills-holes-with-zero-bytes": True,
                b"prevents-read-past-end-of-share-data": True,
            },
            b"application-version": allmydata.__full_version__.encode(),
        }
        self.mine = set()

    def callRemote(self, methname, *args, **kwargs):
        d = fireEventually()
        d.addCallback(lambda _: getattr(self, methname)(*args, **kwargs))
        return d

    def get_version(self):
        return self.version

    def allocate_buckets(self, si, renew_secret, cancel_secret, sharenums, allocated_size, canary):
        bws = {}
        for sh in sharenums:
            bws[sh] = FakeBucketWriter(self.grid, si, sh, allocated_size)
            self.mine.add((si, sh))
        return (set(), bws)

    def get_buckets(self, si):
        return {sh: FakeBucketReader(self.grid.shares[(si_, sh)])
                for (si_, sh) in self.mine if si_ == si and (si_, sh) in self.grid.shares}

    def advise_corrupt_share(self, *args):
        raise AssertionError("corrupt share advised: %r" % (args,))


def make_serverid(i):
    return hashutil.tagged_hash(b"cairn-vectors-serverid", b"%d" % i)[:20]


def add_servers(broker, servers):
    for i, srv in enumerate(servers):
        tubid = make_serverid(i)
        tubid_b32 = base32.b2a(tubid)
        ann = {"anonymous-storage-FURL": "pb://%s@nowhere.invalid/fake" % tubid_b32.decode(),
               "permutation-seed-base32": tubid_b32}
        broker.test_add_rref(b"v0-fake-" + tubid_b32, srv, ann)


class ImmutableGrid(service.MultiService):
    """A fake client parent for allmydata.immutable.upload.Uploader."""

    def __init__(self, nservers):
        service.MultiService.__init__(self)
        self.shares = {}
        self.write_log = []
        self.params = None
        self.storage_broker = StorageFarmBroker(
            permute_peers=True, tub_maker=None, node_config=config_from_string("", "", ""))
        add_servers(self.storage_broker, [FakeImmutableServer(self) for _ in range(nservers)])
        self._secret_holder = client.SecretHolder(b"cairn lease secret", b"unused convergence")
        self.uploader = upload.Uploader()
        self.uploader.setServiceParent(self)
        self.terminator = client.Terminator()
        self.nodemaker = NodeMaker(self.storage_broker, self._secret_holder, None,
                                   self.uploader, self.terminator,
                                   {"k": 3, "n": 10}, SDMF_VERSION, None)

    def get_encoding_parameters(self):
        return self.params

    def get_storage_broker(self):
        return self.storage_broker

    async def upload(self, data, convergence, k, n, max_segment_size, happy=1):
        self.params = {"k": k, "happy": happy, "n": n, "max_segment_size": max_segment_size}
        self.shares.clear()
        self.write_log = []
        res = await self.uploader.upload(upload.Data(data, convergence))
        return res


# --------------------------------------------------------------------------
# 2. chk_caps.json

CONV_A = b"aaaaaaaaaaaaaaaa"
CONV_HW = sha256(b"Hello world")[:16]
CONV_32 = sha256(b"cairn 32-byte convergence secret")
CONV_EMPTY = b""

# seeds used by Tahoe's integration/vectors/parameters.py for these sizes
INTEGRATION_SEEDS = {
    56: b"a", 1024: b"a", 4096: b"c",
    131071: sha256(b"foo"), 131073: sha256(b"bar"),
    2097151: sha256(b"baz"), 2097153: sha256(b"quux"),
    4194304: sha256(b"bazquux"),
    8388607: sha256(b"foobar"), 8388609: sha256(b"barbaz"),
}


def seed_for(size):
    if size in INTEGRATION_SEEDS:
        return INTEGRATION_SEEDS[size]
    if size <= 1024:
        return b"a"
    return sha256(b"cairn-%d" % size)


def chk_sizes(S):
    sizes = [1, 55, 56, 1024, 4096, S - 1, S, S + 1, 2 * S - 1, 2 * S, 2 * S + 1]
    if S == 131072:
        sizes += [2097151, 2097153, 4194304]      # the rest of the integration-vector sizes
    sizes += [8388607, 8388608, 8388609]
    return sizes


CHK_PARAMS = [(1, 1), (1, 3), (2, 3), (3, 10), (71, 255), (101, 256)]
SEGSIZES = [131072, 1048576]


def chk_case_list():
    cases = []
    for (k, n) in CHK_PARAMS:
        for conv in (CONV_A, CONV_HW):
            for S in SEGSIZES:
                for size in chk_sizes(S):
                    cases.append((k, n, S, conv, size))
    # a 32-byte convergence secret (Tahoe's default private/convergence length)
    for (k, n) in CHK_PARAMS:
        for S in SEGSIZES:
            if k <= 3:
                sizes = chk_sizes(S)
            else:
                sizes = [56, 1024, S + 1, 8388609]
            for size in sizes:
                cases.append((k, n, S, CONV_32, size))
    # the empty convergence secret
    for size in (56, 1024, 131073, 262145):
        cases.append((3, 10, 131072, CONV_EMPTY, size))
    return cases


async def gen_chk_caps(check_integration=None):
    cases = chk_case_list()
    out_cases = []
    grids = {}
    t_start = time.time()
    for idx, (k, n, S, conv, size) in enumerate(cases):
        nserv = min(n, 10)
        if nserv not in grids:
            grids[nserv] = ImmutableGrid(nserv)
            grids[nserv].startService()
        g = grids[nserv]
        seed = seed_for(size)
        t = time.time()
        res = await g.upload(stretch(seed, size), conv, k, n, S)
        cap = res.get_uri()
        u = uri.from_string(cap)
        if size > upload.Uploader.URI_LIT_SIZE_THRESHOLD:
            assert isinstance(u, uri.CHKFileURI)
            assert len(g.shares) == n, (len(g.shares), n)
        else:
            assert isinstance(u, uri.LiteralFileURI)
        vc = u.get_verify_cap()
        out_cases.append({
            "k": k, "n": n, "max_segment_size": S,
            "convergence_b64": b64(conv), "seed_b64": b64(seed), "size": size,
            "cap": s(cap),
            "verifycap": s(vc.to_string()) if vc is not None else None,
        })
        if time.time() - t > 1.0 or idx % 50 == 0:
            log("chk_caps %d/%d k=%d n=%d S=%d size=%d (%.1fs)" % (
                idx + 1, len(cases), k, n, S, size, time.time() - t))
        g.shares.clear()
    for g in grids.values():
        await g.stopService()
    log("chk_caps: %d cases in %.1fs" % (len(out_cases), time.time() - t_start))
    write_json("chk_caps.json", {"tahoe_version": TAHOE_VERSION, "cases": out_cases})
    if check_integration:
        check_chk_against_integration(out_cases, check_integration)


def load_integration(path):
    import yaml
    with open(path) as f:
        return yaml.safe_load(f)["vector"]


def check_chk_against_integration(out_cases, path):
    vecs = load_integration(path)
    ours = {}
    for c in out_cases:
        ours[(c["k"], c["n"], c["max_segment_size"], c["convergence_b64"], c["seed_b64"], c["size"])] = c["cap"]
    matched = 0
    total = 0
    for v in vecs:
        if v["format"]["kind"] != "chk":
            continue
        total += 1
        z = v["zfec"]
        key = (z["required"], z["total"], z["segmentSize"], v["convergence"],
               v["sample"]["seed"], v["sample"]["length"])
        if key in ours:
            assert ours[key] == v["expected"], (key, ours[key], v["expected"])
            matched += 1
    log("integration check: %d of %d CHK integration vectors are in chk_caps.json and all match"
        % (matched, total))


# --------------------------------------------------------------------------
# 3. chk_shares.json

CHK_SHARE_CASES = [
    # (k, n, S, conv, seed, size, layout_version, note)
    (3, 10, 131072, CONV_A, b"a", 56, 1, "smallest CHK; tail padding 56->57"),
    (3, 10, 131072, CONV_A, None, 1000, 1, "single segment, tail padding 1000->1002"),
    (3, 10, 131072, CONV_HW, None, 300000, 1, "3 segments of 131073 (tail 37854)"),
    (3, 10, 131072, CONV_A, None, 131075, 1, "2 segments, 2-byte tail padded to 3 (1-byte tail blocks)"),
    (1, 1, 131072, CONV_A, None, 1024, 1, "1-of-1 single segment"),
    (1, 1, 131072, CONV_HW, None, 200000, 1, "1-of-1, 2 segments"),
    (2, 3, 131072, CONV_A, None, 1001, 1, "2-of-3, tail padding 1001->1002"),
    (1, 3, 131072, CONV_32, None, 4096, 1, "1-of-3, 32-byte convergence secret"),
    (71, 255, 131072, CONV_A, None, 1000, 1,
     "71-of-255 (block size 15, tail padded 1000->1065); share hash chains NOT in sorted order"),
    (101, 256, 131072, CONV_HW, b"a", 56, 1, "101-of-256, 56 bytes padded to 101 (1-byte blocks)"),
    (3, 10, 131072, CONV_A, b"a", 56, 2, "v2 layout (WriteBucketProxy_v2) of the 56-byte case"),
    (3, 10, 131072, CONV_HW, None, 300000, 2, "v2 layout of the 300000-byte case"),
]


def parse_ueb_from_share(share, version):
    if version == 1:
        off_ueb = struct.unpack(">L", share[0x20:0x24])[0]
        (ln,) = struct.unpack(">L", share[off_ueb:off_ueb + 4])
        return share[off_ueb + 4:off_ueb + 4 + ln]
    else:
        off_ueb = struct.unpack(">Q", share[0x3c:0x44])[0]
        (ln,) = struct.unpack(">Q", share[off_ueb:off_ueb + 8])
        return share[off_ueb + 8:off_ueb + 8 + ln]


async def gen_chk_shares():
    out_cases = []
    grids = {}
    for (k, n, S, conv, seed, size, version, note) in CHK_SHARE_CASES:
        if seed is None:
            seed = seed_for(size)
        nserv = min(n, 10)
        if nserv not in grids:
            grids[nserv] = ImmutableGrid(nserv)
            grids[nserv].startService()
        g = grids[nserv]
        data = stretch(seed, size)
        imm_layout.FORCE_V2 = (version == 2)
        try:
            res = await g.upload(data, conv, k, n, S)
        finally:
            imm_layout.FORCE_V2 = False
        cap = res.get_uri()
        u = uri.from_string(cap)
        assert isinstance(u, uri.CHKFileURI)
        si = u.get_storage_index()
        shares = {sh: g.shares[(si, sh)] for sh in range(n)}
        ueb = parse_ueb_from_share(shares[0], version)
        for sh, share in shares.items():
            assert struct.unpack(">L", share[:4])[0] == version
            assert parse_ueb_from_share(share, version) == ueb
        assert hashutil.uri_extension_hash(ueb) == u.uri_extension_hash
        assert ueb == uri.pack_extension(res.get_uri_extension_data())
        # Verify the recorded shares by downloading them with Tahoe's own
        # immutable downloader (which checks every hash).
        node = g.nodemaker.create_from_cap(cap)
        got = await download_to_data(node)
        assert got == data, "download mismatch"
        # the order in which share-hash-chain entries were written
        ueb_fields = uri.unpack_extension(ueb)
        out_cases.append({
            "note": note,
            "k": k, "n": n, "max_segment_size": S,
            "convergence_b64": b64(conv), "seed_b64": b64(seed), "size": size,
            "layout_version": version,
            "cap": s(cap),
            "verifycap": s(u.get_verify_cap().to_string()),
            "storage_index_b32": s(si_b2a(si)),
            "encryption_key_hex": hx(u.key),
            "ueb_hex": hx(ueb),
            "ueb_fields": {kk: (vv if isinstance(vv, int) else
                                (hx(vv) if kk.endswith("hash") else s(vv)))
                           for kk, vv in sorted(ueb_fields.items())},
            "plaintext_b64": b64(data) if size <= 4096 else None,
            "shares": {str(sh): b64(shares[sh]) for sh in range(n)},
        })
        log("chk_shares: k=%d n=%d size=%d v%d -> %s" % (k, n, size, version, s(cap)))
        g.shares.clear()
    for g in grids.values():
        await g.stopService()
    write_json("chk_shares.json", {"tahoe_version": TAHOE_VERSION, "cases": out_cases})


# ==========================================================================
# Mutable: keys, caps, shares.  Real NodeMaker/MutableFileNode/Publish
# writing into real StorageServer instances (in temp dirs).
# ==========================================================================

def ensure_keys():
    os.makedirs(KEY_DIR, exist_ok=True)
    for i in (1, 2, 3):
        path = os.path.join(KEY_DIR, "key%d.pem" % i)
        if not os.path.exists(path):
            key = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
            with open(path, "wb") as f:
                f.write(pem)
            log("generated new RSA key %s" % path)
    p8 = os.path.join(KEY_DIR, "key1.p8.pem")
    key1 = load_pem_key("key1.pem")
    if not os.path.exists(p8):
        pem = key1.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        with open(p8, "wb") as f:
            f.write(pem)
    # key1.p8.pem must be the same key as key1.pem
    k8 = load_pem_key("key1.p8.pem")
    assert rsa.der_string_from_signing_key(k8) == rsa.der_string_from_signing_key(key1)
    with open(os.path.join(KEY_DIR, "key1.pem"), "rb") as f:
        assert f.read().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    with open(p8, "rb") as f:
        assert f.read().startswith(b"-----BEGIN PRIVATE KEY-----")


def load_pem_key(name):
    with open(os.path.join(KEY_DIR, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def tahoe_keypair_from_pem_bytes(pem):
    """PEM -> PKCS#8 DER -> Tahoe's create_signing_keypair_from_string."""
    k = serialization.load_pem_private_key(pem, password=None)
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    priv, pub = rsa.create_signing_keypair_from_string(der)
    return (pub, priv)


def tahoe_keypair(name):
    with open(os.path.join(KEY_DIR, name), "rb") as f:
        return tahoe_keypair_from_pem_bytes(f.read())


# ---- randomness control for the mutable publish path

class _PublishOS(object):
    """Stand-in for the `os` module inside allmydata.mutable.publish: all
    attributes delegate to the real os module except urandom, which draws from
    the current Drbg (salts / IVs)."""

    def __init__(self):
        self.drbg = None
        self.drawn = []

    def __getattr__(self, name):
        return getattr(os, name)

    def urandom(self, n):
        if self.drbg is None:
            return os.urandom(n)
        b = self.drbg.take(n)
        self.drawn.append(b)
        return b


PUBLISH_OS = _PublishOS()
_REAL_SIGN = rsa.sign_data


class _Signer(object):
    def __init__(self):
        self.drbg = None
        self.salts = []
        self.deterministic = True

    def sign_data(self, private_key, data):
        if not self.deterministic or self.drbg is None:
            sig = _REAL_SIGN(private_key, data)
        else:
            salt = self.drbg.take(rsa.RSA_PSS_SALT_LENGTH)
            self.salts.append(salt)
            sig = pss_sign_with_salt(private_key, data, salt)
        # always check with Tahoe's own verifier
        rsa.verify_signature(private_key.public_key(), sig, data)
        return sig


SIGNER = _Signer()


def _mgf1_sha256(seed, length):
    out = b""
    c = 0
    while len(out) < length:
        out += hashlib.sha256(seed + struct.pack(">L", c)).digest()
        c += 1
    return out[:length]


def pss_sign_with_salt(private_key, message, salt):
    """RSASSA-PSS (RFC 8017 sec. 8.1.1 / 9.1.1) with SHA-256, MGF1-SHA-256 and
    the given salt; identical to what cryptography's PSS(salt_length=32)
    produces except that the salt is supplied instead of random."""
    nums = private_key.private_numbers()
    nmod, d = nums.public_numbers.n, nums.d
    mod_bits = nmod.bit_length()
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    mhash = hashlib.sha256(message).digest()
    h = hashlib.sha256(b"\x00" * 8 + mhash + salt).digest()
    ps = b"\x00" * (em_len - len(salt) - len(h) - 2)
    db = ps + b"\x01" + salt
    mask = _mgf1_sha256(h, em_len - len(h) - 1)
    masked = bytearray(a ^ b for a, b in zip(db, mask))
    masked[0] &= 0xff >> (8 * em_len - em_bits)
    em = bytes(masked) + h + b"\xbc"
    m = int.from_bytes(em, "big")
    sig = pow(m, d, nmod)
    return sig.to_bytes((mod_bits + 7) // 8, "big")


class randomness_for(object):
    """Context manager: deterministic salts and PSS salts for one case."""

    def __init__(self, label):
        self.label = label

    def __enter__(self):
        PUBLISH_OS.drbg = Drbg(b"cairn-mutable-salts:" + self.label.encode())
        PUBLISH_OS.drawn = []
        SIGNER.drbg = Drbg(b"cairn-pss-salts:" + self.label.encode())
        SIGNER.salts = []
        mut_publish.os = PUBLISH_OS
        rsa.sign_data = SIGNER.sign_data
        return self

    def __exit__(self, *exc):
        self.salts = list(PUBLISH_OS.drawn)
        self.pss_salts = list(SIGNER.salts)
        PUBLISH_OS.drbg = None
        SIGNER.drbg = None
        mut_publish.os = os
        rsa.sign_data = _REAL_SIGN
        return False


class LocalStorageRref(object):
    """Presents a real FoolscapStorageServer as a remote reference."""

    def __init__(self, ss):
        self.ss = ss
        self.fss = FoolscapStorageServer(ss)
        self.version = ss.get_version()

    def callRemote(self, methname, *args, **kwargs):
        d = fireEventually()
        d.addCallback(lambda _: getattr(self.fss, "remote_" + methname)(*args, **kwargs))
        return d

    def callRemoteOnly(self, methname, *args, **kwargs):
        self.callRemote(methname, *args, **kwargs)


class MutableGrid(object):
    """N real StorageServers in a temp dir + a NodeMaker that talks to them."""

    def __init__(self, k, n, nservers=10):
        self.tmp = tempfile.mkdtemp(prefix="cairn-vectors-")
        self.servers = []
        rrefs = []
        for i in range(nservers):
            ss = StorageServer(os.path.join(self.tmp, "s%d" % i), make_serverid(i))
            self.servers.append(ss)
            rrefs.append(LocalStorageRref(ss))
        self.broker = StorageFarmBroker(permute_peers=True, tub_maker=None,
                                        node_config=config_from_string("", "", ""))
        add_servers(self.broker, rrefs)
        self.secret_holder = client.SecretHolder(b"cairn lease secret", b"cairn convergence")
        self.nodemaker = NodeMaker(self.broker, self.secret_holder, None, None, None,
                                   {"k": k, "n": n}, SDMF_VERSION, None)

    def slots(self, si):
        """{shnum: slot bytes} over all servers (each shnum must be on one server)."""
        found = {}
        for ss in self.servers:
            res = ss.slot_readv(si, [], [(0, 2 ** 40)])
            for sh, (data,) in res.items():
                assert sh not in found, "share %d on two servers" % sh
                found[sh] = data
        return found

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def mutable_eof(share):
    v = share[0]
    if v == 0:
        return struct.unpack(">Q", share[99:107])[0]
    if v == 1:
        return struct.unpack(">Q", share[59 + 7 * 8:59 + 8 * 8])[0]
    raise ValueError(v)


# --------------------------------------------------------------------------
# 4. mutable_caps.json

async def gen_mutable_caps(check_integration=None):
    out_cases = []
    for keyname in ("key1.pem", "key2.pem", "key3.pem"):
        keypair = tahoe_keypair(keyname)
        pub, priv = keypair
        privder = rsa.der_string_from_signing_key(priv)
        pubder = rsa.der_string_from_verifying_key(pub)
        writekey, encprivkey, fingerprint = mut_common.derive_mutable_keys(keypair)
        for fmt, version in (("sdmf", SDMF_VERSION), ("mdmf", MDMF_VERSION)):
            # a real mutable file and a real (empty) mutable directory, each
            # created with this keypair in its own fresh grid
            g = MutableGrid(3, 10)
            try:
                with randomness_for("caps-%s-%s" % (keyname, fmt)):
                    node = await g.nodemaker.create_mutable_file(MutableData(b""), version=version,
                                                                 keypair=keypair)
            finally:
                g.close()
            g = MutableGrid(3, 10)
            try:
                with randomness_for("dircaps-%s-%s" % (keyname, fmt)):
                    dnode = await g.nodemaker.create_new_mutable_directory(
                        {}, version=version, keypair=keypair)
            finally:
                g.close()
            assert node.get_writekey() == writekey
            assert node.get_fingerprint() == fingerprint
            assert node.get_encprivkey() == encprivkey
            wc = uri.from_string(node.get_uri())
            expect_cls = uri.WriteableSSKFileURI if fmt == "sdmf" else uri.WriteableMDMFFileURI
            assert isinstance(wc, expect_cls)
            assert wc.to_string() == expect_cls(writekey, fingerprint).to_string()
            # wrap_dirnode_cap must agree with the real dirnode
            assert uri.wrap_dirnode_cap(wc).to_string() == dnode.get_uri()
            out_cases.append({
                "key_file": "mutable_keys/" + keyname,
                "format": fmt,
                "writecap": s(node.get_uri()),
                "readcap": s(node.get_readonly_uri()),
                "verifycap": s(node.get_verify_cap().to_string()),
                "storage_index_b32": s(si_b2a(node.get_storage_index())),
                "writekey_hex": hx(writekey),
                "readkey_hex": hx(node.get_readkey()),
                "fingerprint_hex": hx(fingerprint),
                "write_enabler_master_hex": hx(hashutil.ssk_write_enabler_master_hash(writekey)),
                "encprivkey_hex": hx(encprivkey),
                "privkey_pkcs8_der_hex": hx(privder),
                "pubkey_spki_der_hex": hx(pubder),
                "dir_writecap": s(dnode.get_uri()),
                "dir_readcap": s(dnode.get_readonly_uri()),
                "dir_verifycap": s(dnode.get_verify_cap().to_string()),
            })
            log("mutable_caps: %s %s -> %s" % (keyname, fmt, s(node.get_uri())))
    # key1.p8.pem gives the same caps as key1.pem
    with open(os.path.join(KEY_DIR, "key1.p8.pem"), "rb") as f:
        kp8 = tahoe_keypair_from_pem_bytes(f.read())
    assert mut_common.derive_mutable_keys(kp8) == mut_common.derive_mutable_keys(tahoe_keypair("key1.pem"))
    # Cross-check against Tahoe's own test data (test_dirnode.py)
    datadir = os.path.join(os.path.dirname(allmydata.__file__), "test", "data")
    p = os.path.join(datadir, "openssl-rsa-2048-2.txt")
    if os.path.exists(p):
        with open(p, "rb") as f:
            kp = tahoe_keypair_from_pem_bytes(f.read())
        wk, _, fp = mut_common.derive_mutable_keys(kp)
        assert uri.DirectoryURI(uri.WriteableSSKFileURI(wk, fp)).to_string() == \
            b"URI:DIR2:n4opqgewgcn4mddu4oiippaxru:ukpe4z6xdlujdpguoabergyih3bj7iaafukdqzwthy2ytdd5bs2a"
        log("mutable_caps: openssl-rsa-2048-2.txt from Tahoe's test data gives the expected DIR2 cap")
    write_json("mutable_caps.json", {"tahoe_version": TAHOE_VERSION, "cases": out_cases})
    if check_integration:
        check_ssk_against_integration(check_integration)


def check_ssk_against_integration(path):
    n = 0
    for v in load_integration(path):
        if v["format"]["kind"] != "ssk":
            continue
        params = v["format"]["params"]
        kp = tahoe_keypair_from_pem_bytes(params["key"].encode("ascii"))
        wk, _, fp = mut_common.derive_mutable_keys(kp)
        cls = uri.WriteableSSKFileURI if params["format"] == "sdmf" else uri.WriteableMDMFFileURI
        assert s(cls(wk, fp).to_string()) == v["expected"], v["expected"]
        n += 1
    log("integration check: all %d SDMF/MDMF integration vectors match our key derivation" % n)


# --------------------------------------------------------------------------
# 5. mutable_shares.json

MUTABLE_SHARE_CASES = [
    # (label, fmt, k, n, keyfile, plaintext(s) [first, overwrite...])
    ("sdmf-3-10-small", "sdmf", 3, 10, "key1.pem",
     [b"This is a small SDMF file for cairn's golden vectors. It is about one hundred bytes long!!\n"]),
    ("sdmf-3-10-empty", "sdmf", 3, 10, "key2.pem", [b""]),
    ("sdmf-1-1-small", "sdmf", 1, 1, "key3.pem",
     [b"SDMF 1-of-1: the single share holds the whole ciphertext.\n"]),
    ("sdmf-2-3-tailpad", "sdmf", 2, 3, "key2.pem", [b"odd length: 31 bytes of data..\n"]),
    ("mdmf-3-10-small", "mdmf", 3, 10, "key1.pem",
     [b"This is a small MDMF file for cairn's golden vectors. It is about one hundred bytes long!!\n"]),
    ("mdmf-3-10-multiseg", "mdmf", 3, 10, "key2.pem", [("stretch", sha256(b"cairn-mdmf"), 300000)]),
    ("mdmf-3-10-empty", "mdmf", 3, 10, "key3.pem", [b""]),
    ("mdmf-1-1-small", "mdmf", 1, 1, "key1.pem", [b"MDMF 1-of-1.\n"]),
    ("sdmf-3-10-seqnum2", "sdmf", 3, 10, "key3.pem",
     [b"first version (seqnum 1)\n", b"second version, written by overwrite() (seqnum 2)\n"]),
    ("mdmf-3-10-seqnum2", "mdmf", 3, 10, "key3.pem",
     [b"first version (seqnum 1)\n", b"second version, written by overwrite() (seqnum 2)\n"]),
    # overwrite with SHORTER contents: the server never truncates a mutable
    # slot (publish sends new_length=None), so stale bytes of version 1 stay
    # after the new share's EOF offset.
    ("sdmf-3-10-seqnum2-shrink", "sdmf", 3, 10, "key1.pem",
     [("stretch", b"first, longer version. ", 3000), b"shorter second version\n"]),
]


def materialize(p):
    if isinstance(p, tuple):
        _, seed, size = p
        return stretch(seed, size), seed, size
    return p, None, len(p)


async def gen_mutable_shares(deterministic=True):
    SIGNER.deterministic = deterministic
    out_cases = []
    for (label, fmt, k, n, keyname, contents) in MUTABLE_SHARE_CASES:
        version = SDMF_VERSION if fmt == "sdmf" else MDMF_VERSION
        keypair = tahoe_keypair(keyname)
        g = MutableGrid(k, n)
        try:
            with randomness_for("shares-" + label) as rnd:
                first, _, _ = materialize(contents[0])
                node = await g.nodemaker.create_mutable_file(MutableData(first), version=version,
                                                             keypair=keypair)
                for later in contents[1:]:
                    data, _, _ = materialize(later)
                    await node.overwrite(MutableData(data))
            final, seed, size = materialize(contents[-1])
            si = node.get_storage_index()
            slots = g.slots(si)
            assert sorted(slots) == list(range(n)), sorted(slots)
            seqnum = len(contents)
            shrink = label.endswith("-shrink")
            for sh, share in slots.items():
                assert share[0] == (0 if fmt == "sdmf" else 1)
                assert struct.unpack(">Q", share[1:9])[0] == seqnum
                if shrink:
                    assert len(share) > mutable_eof(share), (label, sh)
                else:
                    assert len(share) == mutable_eof(share), (label, sh, len(share), mutable_eof(share))
            # read back with Tahoe's own downloader through a fresh node
            node2 = g.nodemaker.create_from_cap(node.get_readonly_uri())
            got = await node2.download_best_version()
            assert got == final, label
        finally:
            g.close()
        case = {
            "label": label,
            "format": fmt, "k": k, "n": n,
            "key_file": "mutable_keys/" + keyname,
            "writecap": s(node.get_uri()),
            "readcap": s(node.get_readonly_uri()),
            "storage_index_b32": s(si_b2a(si)),
            "seqnum": seqnum,
            "size": size,
            "seed_b64": b64(seed),
            "plaintext_b64": b64(final) if size <= 4096 else None,
            "salts_hex": [hx(x) for x in rnd.salts],
            "pss_salts_hex": [hx(x) for x in rnd.pss_salts],
            "share_eof": {str(sh): mutable_eof(slots[sh]) for sh in range(n)},
            "slot_has_stale_tail": any(len(slots[sh]) != mutable_eof(slots[sh]) for sh in range(n)),
            "shares": {str(sh): b64(slots[sh]) for sh in range(n)},
        }
        if len(contents) > 1:
            prev, _, _ = materialize(contents[-2])
            case["previous_plaintext_b64"] = b64(prev)
        out_cases.append(case)
        log("mutable_shares: %s -> %s (%d shares, share0 %d bytes)" % (
            label, case["writecap"], n, len(slots[0])))
    write_json("mutable_shares.json", {
        "tahoe_version": TAHOE_VERSION,
        "deterministic_randomness": bool(deterministic),
        "cases": out_cases})


# --------------------------------------------------------------------------
# 6. caps.json

async def run_tahoe_cli(reactor, argv):
    """Run the real `tahoe` CLI dispatch in-process, capturing stdout."""
    out, err = io.StringIO(), io.StringIO()
    config = tahoe_runner.Options()
    tahoe_runner.parse_or_exit(config, ["tahoe"] + argv, out, err)
    rc = None
    try:
        await tahoe_runner.dispatch(config, reactor, stdout=out, stderr=err)
    except SystemExit as e:
        rc = e.code
    assert rc in (0, None), (argv, rc, out.getvalue(), err.getvalue())
    return out.getvalue()


def cap_info(cap):
    u = uri.from_string(cap)
    assert not isinstance(u, uri.UnknownURI), (cap, u.get_error())
    ro = u.get_readonly()
    vc_err = None
    try:
        vc = u.get_verify_cap()
        vc = s(vc.to_string()) if vc is not None else None
    except Exception as e:
        # e.g. MDMFDirectoryURIVerifier / ImmutableDirectoryURIVerifier:
        # get_verify_cap() builds a DirectoryURIVerifier whose to_string()
        # asserts (Tahoe bug); record it instead of inventing a value.
        vc = None
        vc_err = "%s: %s" % (type(e).__name__, e)
    si = u.get_storage_index() if hasattr(u, "get_storage_index") else None
    e = {
        "cap": s(cap),
        "kind": type(u).__name__,
        "readcap": s(ro.to_string()) if ro is not None else None,
        "verifycap": vc,
        "storage_index_b32": s(si_b2a(si)) if si is not None else None,
        "is_mutable": bool(u.is_mutable()),
        "is_readonly": bool(u.is_readonly()),
    }
    if vc_err:
        e["verifycap_error"] = vc_err
    return e


async def gen_caps(reactor):
    with open(os.path.join(HERE, "chk_caps.json")) as f:
        chk = json.load(f)["cases"]
    with open(os.path.join(HERE, "mutable_caps.json")) as f:
        mut = json.load(f)["cases"]
    caps = []
    lit = next(c["cap"] for c in chk if c["size"] == 55)
    lit1 = next(c["cap"] for c in chk if c["size"] == 1)
    chkc = next(c for c in chk if (c["k"], c["n"], c["size"]) == (3, 10, 1024))
    chk_1_1 = next(c for c in chk if (c["k"], c["n"], c["size"]) == (1, 1, 56))
    caps += [s(uri.LiteralFileURI(b"").to_string()), lit1, lit,
             chkc["cap"], chkc["verifycap"], chk_1_1["cap"], chk_1_1["verifycap"]]
    for c in mut:
        if c["key_file"].endswith("key1.pem"):
            caps += [c["writecap"], c["readcap"], c["verifycap"],
                     c["dir_writecap"], c["dir_readcap"], c["dir_verifycap"]]

    # immutable directories, built with Tahoe's NodeMaker.create_immutable_directory
    g = ImmutableGrid(10)
    g.startService()
    g.params = {"k": 3, "happy": 1, "n": 10, "max_segment_size": 131072}
    nm = g.nodemaker
    md = {"tahoe": {"linkcrtime": 1700000000.0, "linkmotime": 1700000000.0}}
    chk_child = nm.create_from_cap(chkc["cap"].encode())
    dir_chk = await nm.create_immutable_directory({"file.txt": (chk_child, md)}, convergence=CONV_A)
    lit_child = nm.create_from_cap(uri.LiteralFileURI(b"hi").to_string())
    dir_lit = await nm.create_immutable_directory({"a": (lit_child, {})}, convergence=CONV_A)
    dir_lit_empty = await nm.create_immutable_directory({}, convergence=CONV_A)
    await g.stopService()
    assert dir_lit_empty.get_uri() == b"URI:DIR2-LIT:"
    dcu = uri.from_string(dir_chk.get_uri())
    assert isinstance(dcu, uri.ImmutableDirectoryURI)
    assert isinstance(uri.from_string(dir_lit.get_uri()), uri.LiteralDirectoryURI)
    tiny_litdir = b"URI:DIR2-LIT:gqytunj2onug64tufqzdcosvkjetutcjkq5gw4tvm5vwszdgnz5hgyzufqydulbshj5x2lbm"
    caps += [s(dir_chk.get_uri()), s(dcu.get_verify_cap().to_string()),
             s(dir_lit.get_uri()), s(dir_lit_empty.get_uri()), s(tiny_litdir)]
    immutable_dirs = {
        "dir2_chk": {"cap": s(dir_chk.get_uri()),
                     "packed_hex": hx(pack_children({"file.txt": (chk_child, md)}, None, deep_immutable=True))},
        "dir2_lit": {"cap": s(dir_lit.get_uri()),
                     "packed_hex": hx(pack_children({"a": (lit_child, {})}, None, deep_immutable=True))},
    }

    seen = set()
    out = []
    for cap in caps:
        if cap in seen:
            continue
        seen.add(cap)
        e = cap_info(cap.encode())
        e["dump_cap"] = await run_tahoe_cli(reactor, ["debug", "dump-cap", cap])
        out.append(e)
    kinds = {e["kind"] for e in out}
    expected_kinds = {"LiteralFileURI", "CHKFileURI", "CHKFileVerifierURI", "WriteableSSKFileURI",
                      "ReadonlySSKFileURI", "SSKVerifierURI", "WriteableMDMFFileURI",
                      "ReadonlyMDMFFileURI", "MDMFVerifierURI", "DirectoryURI",
                      "ReadonlyDirectoryURI", "DirectoryURIVerifier", "ImmutableDirectoryURI",
                      "ImmutableDirectoryURIVerifier", "LiteralDirectoryURI", "MDMFDirectoryURI",
                      "ReadonlyMDMFDirectoryURI", "MDMFDirectoryURIVerifier"}
    assert expected_kinds <= kinds, expected_kinds - kinds

    # dump-cap with --nodeid / --client-secret (write enabler + lease secrets)
    nodeid = make_serverid(0)
    secret = sha256(b"cairn client lease secret")
    nodeid_arg = s(base64.b32encode(nodeid)).lower()
    secret_arg = s(base32.b2a(secret))
    with_secrets = []
    for cap in (chkc["cap"], mut[0]["writecap"], mut[1]["writecap"]):
        with_secrets.append({
            "cap": cap, "nodeid_b32": nodeid_arg, "client_secret_b32": secret_arg,
            "argv": ["debug", "dump-cap", "--nodeid", nodeid_arg, "--client-secret", secret_arg, cap],
            "dump_cap": await run_tahoe_cli(reactor, ["debug", "dump-cap", "--nodeid", nodeid_arg,
                                                      "--client-secret", secret_arg, cap]),
        })

    invalid, lenient = classify_odd_caps(chkc, mut)
    write_json("caps.json", {"tahoe_version": TAHOE_VERSION, "cases": out,
                             "dump_cap_with_secrets": with_secrets,
                             "immutable_dirs": immutable_dirs,
                             "invalid": invalid, "lenient": lenient})


def classify_odd_caps(chkc, mut):
    chkcap = chkc["cap"]
    _, _, key, ueb, k, n, size = chkcap.split(":")
    sdmf = next(c for c in mut if c["format"] == "sdmf")
    mdmf = next(c for c in mut if c["format"] == "mdmf")
    _, _, wk, fp = sdmf["writecap"].split(":")
    _, _, mwk, mfp = mdmf["writecap"].split(":")
    _, _, si, vueb, _, _, _ = chkc["verifycap"].split(":")

    def noncanon(x):
        # flip the last char to one whose unused low bits are non-zero
        last = x[-1]
        alphabet = "abcdefghijklmnopqrstuvwxyz234567"
        v = alphabet.index(last)
        return x[:-1] + alphabet[v | 1]

    candidates = [
        "",
        "URI:",
        "URI:FOO:abc",
        "uri:CHK:%s:%s:%s:%s:%s" % (key, ueb, k, n, size),
        " " + chkcap,
        "URI:CHK:%s:%s:%s:%s:%s" % (key.upper(), ueb, k, n, size),
        "URI:CHK:%s:%s:%s:%s:%s" % (key[:-1] + "1", ueb, k, n, size),
        "URI:CHK:%s:%s:%s:%s:%s" % (noncanon(key), ueb, k, n, size),
        "URI:CHK:%s:%s:%s:%s:%s" % (key, noncanon(ueb), k, n, size),
        "URI:CHK:%s:%s:%s:%s:%s" % (key[:-1], ueb, k, n, size),
        "URI:CHK:%s:%s:%s:%s" % (key, ueb, k, n),
        "URI:CHK:%s:%s:%s:%s:%s:7" % (key, ueb, k, n, size),
        "URI:CHK:%s:%s:-3:%s:%s" % (key, ueb, n, size),
        "URI:CHK:%s:%s:3:10:" % (key, ueb),
        "URI:CHK:%s:%s:3:10:1024\n" % (key, ueb),
        "URI:CHK:%s:%s:11:10:1024" % (key, ueb),
        "URI:CHK:%s:%s:0:10:1024" % (key, ueb),
        "URI:CHK:%s:%s:03:010:01024" % (key, ueb),
        "URI:CHK:%s:%s:3:10:0" % (key, ueb),
        "URI:CHK:%s:%s:300:1000:1024" % (key, ueb),
        "URI:CHK-Verifier:%s:%s:3:10:1024:trailing-junk" % (si, vueb),
        "URI:CHK-Verifier:%s:%s:3:10" % (si, vueb),
        "URI:CHK-Verifier:%s:%s:3:10:1024" % (noncanon(si), vueb),
        "URI:LIT:b",
        "URI:LIT:ab",
        "URI:LIT:MFRGG",
        "URI:LIT:mfrgg===",
        "URI:SSK:%s:%s:extra" % (wk, fp),
        "URI:SSK:%s:%s" % (noncanon(wk), fp),
        "URI:SSK:%s:%s" % (wk, noncanon(fp)),
        "URI:SSK:%s" % (wk,),
        "URI:SSK-RO:%s:%s:" % (wk, fp),
        "URI:MDMF:%s:%s:3:131073" % (mwk, mfp),
        "URI:MDMF:%s:%s:" % (mwk, mfp),
        "URI:MDMF:%s:%sx" % (mwk, mfp),
        "URI:MDMF-RO:%s:%s:3:131073" % (mwk, mfp),
        "URI:MDMF-Verifier:%s:%s:anything" % (mwk, mfp),
        "ro." + sdmf["writecap"],
        "ro." + sdmf["readcap"],
        "ro." + sdmf["dir_writecap"],
        "ro." + mdmf["writecap"],
        "ro." + chkcap,
        "imm." + sdmf["readcap"],
        "imm." + sdmf["verifycap"],
        "imm." + mdmf["dir_readcap"],
        "imm." + chkcap,
        "imm.URI:LIT:mfrgg",
        "ro.ro." + chkcap,
        "URI:DIR2:%s" % (wk,),
        "URI:DIR2:%s:%s" % (noncanon(wk), fp),
        "URI:DIR2-CHK:%s:%s:%s:%s" % (key, ueb, k, n),
        "URI:DIR2-LIT:b",
        "URI:DIR2-MDMF:%s:%s:3:131073" % (mwk, mfp),
        "x-tahoe-future-test-writeable:foo",
        "x-tahoe-crazy://I_am_from_the_future.",
    ]
    invalid, lenient = [], []
    for c in candidates:
        entry = {"cap": c}
        try:
            u = uri.from_string(c)
        except Exception as e:
            entry.update({"from_string_class": None, "raises": type(e).__name__, "message": str(e)})
            invalid.append(entry)
            continue
        entry["from_string_class"] = type(u).__name__
        if isinstance(u, uri.UnknownURI):
            err = u.get_error()
            entry["error_class"] = type(err).__name__ if err is not None else None
            entry["error_message"] = str(err) if err is not None else None
            invalid.append(entry)
        else:
            entry["to_string"] = s(u.to_string())
            entry["canonical"] = (s(u.to_string()) == c)
            lenient.append(entry)
    return invalid, lenient


# ==========================================================================

async def amain(reactor, args):
    only = set(args.only.split(",")) if args.only else None

    def want(name):
        return only is None or name in only

    if want("kat"):
        gen_kat()
    if want("chk_caps"):
        await gen_chk_caps(args.check_integration)
    if want("chk_shares"):
        await gen_chk_shares()
    ensure_keys()
    if want("mutable_caps"):
        await gen_mutable_caps(args.check_integration)
    if want("mutable_shares"):
        await gen_mutable_shares(deterministic=not args.random_signatures)
    if want("caps"):
        await gen_caps(reactor)
    log("done (tahoe-lafs %s)" % TAHOE_VERSION)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=None)
    p.add_argument("--check-integration", default=None, metavar="TEST_VECTORS_YAML")
    p.add_argument("--random-signatures", action="store_true")
    args = p.parse_args()
    log("tahoe-lafs %s, python %s" % (TAHOE_VERSION, sys.version.split()[0]))
    task.react(lambda reactor: defer.ensureDeferred(amain(reactor, args)))


if __name__ == "__main__":
    main()

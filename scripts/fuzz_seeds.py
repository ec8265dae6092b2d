"""Seed each fuzz target's corpus with real inputs from the golden vectors."""
import base64, hashlib, json, os, sys

out = sys.argv[1]
vec = os.path.join(os.path.dirname(__file__), "..", "vectors")

def put(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)

def load(name):
    p = os.path.join(vec, name)
    return json.load(open(p)) if os.path.exists(p) else {}

for c in load("caps.json").get("cases", []):
    put("cap_parse", c["cap"].encode())
    put("base32_decode", c["cap"].split(":")[2].encode() if c["cap"].count(":") >= 2 else b"")
for c in load("chk_shares.json").get("cases", [])[:6]:
    if c.get("ueb_hex"):
        put("ueb_parse", bytes.fromhex(c["ueb_hex"]))
    for sh in list(c["shares"].values())[:2]:
        b = base64.b64decode(sh)
        if len(b) < 200_000:
            put("chk_share_parse", b)
            put("chk_share_head_parse", b[:0x44])
for c in load("mutable_shares.json").get("cases", []):
    for sh in list(c["shares"].values())[:1]:
        b = base64.b64decode(sh)
        if len(b) < 200_000:
            put("mutable_share_parse", b)
            put("mutable_prefix_parse", b[:4000])
            # a golden share with a 16-byte (offset, length) tail: a small change at 1000
            put("mdmf_update_reads", b + (1000).to_bytes(8, "big") + (4096).to_bytes(8, "big"))

# Share containers as Tahoe's StorageServer wrote them.
def walk_files(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("files_after", "files") and isinstance(v, dict):
                for f in v.values():
                    if isinstance(f, str):
                        yield bytes.fromhex(f)
            else:
                yield from walk_files(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk_files(v)

for name, target in (("immutable.json", "immutable_container_parse"), ("mutable.json", "mutable_container_parse")):
    d = load(os.path.join("containers", name))
    for i, b in enumerate(walk_files(d)):
        if i >= 40:
            break
        if len(b) < 200_000:
            put(target, b)

# GBS request bodies, as Tahoe's client encodes them (CBOR; sets are tag 258).
put("gbs_request_parse", bytes.fromhex("a26d73686172652d6e756d62657273d90102830001026e616c6c6f63617465642d73697a65190400"))
put("gbs_request_parse", b"bytes=0-99")

# Directory bodies and metadata JSON as Tahoe packed them.
d = load("dirnode.json")
for b in d.get("bodies", []):
    put("dirnode_parse", bytes.fromhex(b["body_hex"]))
for text, _ in d.get("json_values", []):
    put("dirnode_parse", text.encode())

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
for c in load("mutable_shares.json").get("cases", []):
    for sh in list(c["shares"].values())[:1]:
        b = base64.b64decode(sh)
        if len(b) < 200_000:
            put("mutable_share_parse", b)

#!/usr/bin/env python3
"""A stand-in for the `cairn` binary, backed by Tahoe-LAFS itself: a self-test of the
harness's cairn code paths (not used by CI).

    .venv-tahoe/bin/python tests/interop/run.py --backends cairn --cairn tests/interop/fake_cairn.py

Implements the CLI contract the suite uses: create-node, run, storage announcement, storage audit.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.environ.get("TAHOE_VENV_PY") or os.path.join(HERE, "..", "..", ".venv-tahoe", "bin", "python")

try:
    import allmydata  # noqa: F401
except ImportError:
    if os.environ.get("_FAKE_CAIRN_REEXEC"):
        raise
    os.environ["_FAKE_CAIRN_REEXEC"] = "1"
    os.execv(PY, [PY, os.path.abspath(__file__)] + sys.argv[1:])

sys.path.insert(0, HERE)


def main(argv):
    if argv[:1] == ["create-node"]:
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("--hostname")
        ap.add_argument("--port", type=int)
        ap.add_argument("dir")
        a = ap.parse_args(argv[1:])
        tahoe = os.path.join(os.path.dirname(sys.executable), "tahoe")
        os.execv(tahoe, [tahoe, "create-node", "--listen=tcp",
                         "--port=tcp:%d:interface=%s" % (a.port, a.hostname),
                         "--location=tcp:%s:%d" % (a.hostname, a.port), "--webport=none", a.dir])
    if argv[:1] == ["run"] and len(argv) == 2:
        os.execv(sys.executable, [sys.executable, os.path.join(HERE, "tahoe_launcher.py"), argv[1]])
    if argv[:2] == ["storage", "announcement"] and len(argv) == 3:
        import harness
        sid, ann = harness.tahoe_announcement(argv[2])
        import yaml
        sys.stdout.write(yaml.safe_dump({sid: {"ann": ann}}, default_flow_style=True, width=10000))
        return 0
    if argv[:2] == ["storage", "audit"]:
        print("fake cairn: no audit")
        return 0
    sys.stderr.write("fake cairn: unsupported: %s\n" % " ".join(argv))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

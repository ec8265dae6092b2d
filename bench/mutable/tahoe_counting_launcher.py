"""Start one Tahoe-LAFS storage node as tests/interop/tahoe_launcher.py does, and count
every request of the HTTPS storage protocol it serves.

    <venv>/bin/python tahoe_counting_launcher.py NODEDIR

Tahoe's StorageServer already counts Foolscap-era operations in its stats provider
(`storage_server.readv`, `.writev`, `.allocate`, ...: shown by the node's
`/statistics?t=json`), but one HTTP request is not one of those: a mutable share list
(`GET /storage/v1/mutable/SI/shares`) is not counted at all, and a read of more than 64 KiB
is counted once per 64 KiB.  So the HTTP resource is wrapped and each request adds one to
`storage_server.http.<METHOD>.<kind>` (kind: `version`, `mutable-list`, `mutable-read`,
`mutable-rtw`, `immutable-...`, `other`) before Tahoe handles it.  Nothing else changes;
the interop tests do not use this file.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "interop"))

import tahoe_launcher  # noqa: E402


def kind_of(method, path):
    parts = [p for p in path.split("/") if p]
    # /storage/v1/version, /storage/v1/mutable/SI/shares, /storage/v1/mutable/SI/N,
    # /storage/v1/mutable/SI/read-test-write, /storage/v1/immutable/SI[/N|/shares], ...
    if parts[:2] != ["storage", "v1"] or len(parts) < 3:
        return "other"
    what = parts[2]
    if what == "version":
        return "version"
    if what == "mutable" and len(parts) >= 5:
        last = parts[4]
        if last == "shares":
            return "mutable-list"
        if last == "read-test-write":
            return "mutable-rtw"
        if last.isdigit():
            return "mutable-read" if method == "GET" else "mutable-" + method.lower()
        return "mutable-" + last
    if what == "immutable":
        return "immutable-" + (parts[4] if len(parts) >= 5 and not parts[4].isdigit() else method.lower())
    return what


def install():
    from twisted.web.resource import Resource
    from allmydata.storage import http_server

    original = http_server.HTTPServer.get_resource

    class Counting(Resource):
        isLeaf = True

        def __init__(self, inner, ss):
            Resource.__init__(self)
            self.inner, self.ss = inner, ss

        def render(self, request):
            method = request.method.decode("ascii", "replace")
            path = request.path.decode("ascii", "replace")
            self.ss.count("http.%s.%s" % (method, kind_of(method, path)))
            return self.inner.render(request)

    def get_resource(self):
        return Counting(original(self), self._storage_server)

    http_server.HTTPServer.get_resource = get_resource


if __name__ == "__main__":
    install()
    tahoe_launcher.main()

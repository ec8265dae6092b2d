"""Start one Tahoe-LAFS node in the foreground, with only loopback listeners.

    <venv>/bin/python tahoe_launcher.py NODEDIR

This is exactly `tahoe run --allow-stdin-close NODEDIR`, with one change: Tahoe 1.20
opens a Foolscap "logport" listener (for `flogtool tail`) through
allmydata.util.iputil.listenOnUnused(), which binds 0.0.0.0 on a random port whatever
tahoe.cfg says.  Here that listener binds 127.0.0.1 instead.  Nothing else differs.
"""

import fcntl
import os
import socket
import sys

LOOPBACK = "127.0.0.1"


def _loopback_listen_on_unused(tub, portnum=None):
    """allmydata.util.iputil.listenOnUnused, bound to 127.0.0.1."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import AdoptedStreamServerEndpoint
    from allmydata.util import iputil

    s = socket.socket()
    try:
        s.bind((LOOPBACK, portnum or 0))
        portnum = s.getsockname()[1]
        s.listen(1)
        fd = os.dup(s.fileno())
        flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | os.O_NONBLOCK | fcntl.FD_CLOEXEC)
        endpoint = iputil.CleanupEndpoint(
            AdoptedStreamServerEndpoint(reactor, fd, socket.AF_INET), fd)
    finally:
        s.close()
    tub.listenOn(endpoint)
    tub.setLocation("%s:%d" % (LOOPBACK, portnum))
    return portnum


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tahoe_launcher.py NODEDIR")
    nodedir = os.path.abspath(sys.argv[1])
    from allmydata.util import iputil
    iputil.listenOnUnused = _loopback_listen_on_unused
    from allmydata.scripts.runner import run
    run(argv=["tahoe", "run", "--allow-stdin-close", nodedir])


if __name__ == "__main__":
    main()

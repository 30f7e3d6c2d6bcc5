#!/usr/bin/env bash
# start-rpcbind.sh - make sure rpcbind answers on this host, so that the
# demo server can register its ports (server.rpcbind = true) and a client's
# plain `mount HOST:/demo /mnt` finds them, without port= and mountport=.
#
#   already answering        says so
#   not installed            says how to install it (tools/install-deps.sh run)
#   not root                 says it cannot start it, and how to mount without it
#   systemd running          systemctl start rpcbind (its socket unit listens)
#   otherwise                rpcbind -w (a daemon: it outlives the demo, as
#                            the system's rpcbind would)
# Always exits 0: the demo serves without rpcbind, only the port-less mount
# needs it.  Waits up to 5 s for a started rpcbind to answer.
set -u

answers() { rpcinfo -p 127.0.0.1 >/dev/null 2>&1; }
without="clients must then mount with -o port=2049,mountport=20048"

if answers; then
    echo "rpcbind: running"
    exit 0
fi
if ! command -v rpcbind >/dev/null 2>&1; then
    echo "rpcbind: not installed (Debian package rpcbind: tools/install-deps.sh run); $without"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "rpcbind: not running, and only root can start it (sudo $0); $without"
    exit 0
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    how="systemctl start rpcbind"
    systemctl start rpcbind.socket rpcbind.service >/dev/null 2>&1 || systemctl start rpcbind >/dev/null 2>&1
else
    how="rpcbind -w"
    # Its state folder (warm-start files), writable by the user it drops to.
    mkdir -p /run/rpcbind
    chown _rpc /run/rpcbind 2>/dev/null || true
    rpcbind -w
fi
for _ in $(seq 50); do
    if answers; then
        echo "rpcbind: started ($how)"
        exit 0
    fi
    sleep 0.1
done
echo "rpcbind: '$how' did not bring it up (see the system log); $without"
exit 0

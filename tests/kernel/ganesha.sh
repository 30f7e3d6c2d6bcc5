#!/usr/bin/env bash
# ganesha.sh DIR NFS_PORT MOUNT_PORT [EXPORT_PATH] - serve DIR read-only over
# NFSv3 with nfs-ganesha (Debian nfs-ganesha + nfs-ganesha-vfs) on
# 127.0.0.1, in the foreground, for validating the kernel-client harness
# against a server that is not ours:
#   run.sh --server-cmd "tests/kernel/ganesha.sh $src 20490 20491" ...
# Ganesha registers with rpcbind when one is listening on 127.0.0.1:111 and
# carries on without it otherwise.  State lives in a temporary folder
# removed on exit.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 DIR NFS_PORT MOUNT_PORT [EXPORT_PATH]" >&2; exit 2; }
dir=$(cd "$1" && pwd)
nfs_port=$2 mount_port=$3 pseudo=${4:-$dir}
command -v ganesha.nfsd >/dev/null || { echo "ganesha.sh: ganesha.nfsd not installed (Debian nfs-ganesha nfs-ganesha-vfs)" >&2; exit 2; }

state=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-ganesha.XXXXXX")
trap 'kill -TERM "$gpid" 2>/dev/null; wait "$gpid" 2>/dev/null; rm -rf "$state"' EXIT
trap 'exit 0' TERM INT

cat > "$state/ganesha.conf" <<EOF
NFS_Core_Param {
    NFS_Port = $nfs_port;
    MNT_Port = $mount_port;
    Bind_Addr = 127.0.0.1;
    NFS_Protocols = 3;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}
NFSv4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "$state/recovery"; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT_DEFAULTS { Squash = no_root_squash; SecType = sys; }
EXPORT {
    Export_Id = 1;
    Path = "$dir";
    Pseudo = "$pseudo";
    Protocols = 3;
    Transports = TCP;
    Access_Type = RO;
    # Ganesha caches attributes and folders for 60 s by default; the
    # suite's close-to-open cases pass --ttl to match GANESHA_ATTR_TTL.
    Attr_Expiration_Time = ${GANESHA_ATTR_TTL:-0};
    Squash = no_root_squash;
    FSAL { Name = VFS; }
}
EOF
ganesha.nfsd -F -L /dev/stderr -f "$state/ganesha.conf" -p "$state/ganesha.pid" \
    -N NIV_EVENT &
gpid=$!
wait "$gpid"

# lib.sh - what bench/run.sh and bench/cache.sh share: the peer, ganesha,
# configured the same way for every benchmark.  Source it from the top of
# the repository.
#
#   bench_ganesha_conf FILE NFS_PORT MOUNT_PORT EXPORT_DIR RECOVERY_DIR
#       write ganesha's configuration
#   bench_norpcbind OUT
#       build bench/peer/norpcbind.c as OUT, to preload into ganesha

# Defaults as shipped except what running here needs: NFSv3 on TCP only,
# fixed ports, no NLM/RQUOTA (both need rpcbind), MNT of the pseudo path so
# every server mounts "/bench", a private recovery dir.
bench_ganesha_conf() {
    cat >"$1" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $2;
    MNT_Port = $3;
    Bind_Addr = 127.0.0.1;
    Protocols = 3;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Mount_Path_Pseudo = true;
}
NFSV4 {
    RecoveryRoot = "$5";
    Graceless = true;
}
EXPORT {
    Export_Id = 1;
    Path = "$4";
    Pseudo = "/bench";
    Access_Type = RO;
    Squash = No_Root_Squash;
    Protocols = 3;
    Transports = TCP;
    SecType = sys;
    CLIENT { Clients = 127.0.0.0/8; Access_Type = RO; }
    FSAL { Name = VFS; }
}
EOF
}

# ganesha registers with rpcbind and exits when it cannot: the preload
# makes rpcb_set/rpcb_unset succeed without contacting anyone.
bench_norpcbind() {
    cc -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$1" bench/peer/norpcbind.c
}

#!/usr/bin/env bash
# install.sh - `make install` as a packager and an operator see it:
#   - the tree under DESTDIR for PREFIX=/usr: programs, unit, man pages,
#     configuration, their modes, no placeholder or repository path left;
#   - systemd-analyze verify accepts the unit;
#   - both man pages render without a groff warning;
#   - the installed bucketnfsd -t accepts the installed configuration;
#   - a second install keeps edited configuration files (new ones go to
#     *.example); PREFIX=/usr/local and SYSTEMDUNITDIR are honored, and the
#     installed admin tool finds the installed configuration by itself;
#   - detached (no -f), the installed daemon logs to syslog: one datagram
#     per event on /dev/log, facility daemon, the event's level.
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

# `make check` runs the suites from build-san: install that build's programs.
make_args=(-s --no-print-directory -C "$IT_ROOT")
[ "$(basename "$IT_BUILD")" = build-san ] && make_args+=(SAN=1)

# ---- PREFIX=/usr into an empty DESTDIR
D=$IT_TMP/root
if make "${make_args[@]}" install PREFIX=/usr DESTDIR="$D" >"$IT_TMP/install.out" 2>&1; then
    ok "make install PREFIX=/usr DESTDIR=..."
else
    fail "make install PREFIX=/usr DESTDIR=..." "$(tail -5 "$IT_TMP/install.out")"
    it_done
    exit 1
fi

expected="etc/bucketnfs/bucketnfs.conf 644
etc/bucketnfs/exports.conf 644
usr/bin/bucketnfs 755
usr/lib/systemd/system/bucketnfsd.service 644
usr/sbin/bucketnfsd 755
usr/share/man/man8/bucketnfs.8 644
usr/share/man/man8/bucketnfsd.8 644"
got=$(cd "$D" && find . -type f -printf '%P %m\n' | sort)
if [ "$got" = "$expected" ]; then ok "installed files and modes"
else fail "installed files and modes" "$(diff <(echo "$expected") <(echo "$got") | tr '\n' ' ')"; fi

left=$(grep -ln '@[A-Z]*DIR@\|\.\./var' "$D"/etc/bucketnfs/* "$D"/usr/lib/systemd/system/* \
           "$D"/usr/share/man/man8/* 2>&1)
if [ -z "$left" ]; then ok "no placeholder or repository-relative path left"
else fail "no placeholder or repository-relative path left" "$left"; fi

unit=$D/usr/lib/systemd/system/bucketnfsd.service
if grep -qx 'ExecStart=/usr/sbin/bucketnfsd -f -c /etc/bucketnfs/bucketnfs.conf' "$unit" &&
   grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit"; then
    ok "unit runs the installed daemon in the foreground on the installed config"
else fail "unit runs the installed daemon in the foreground on the installed config" \
    "$(grep '^Exec' "$unit" | tr '\n' ' ')"; fi

conf=$D/etc/bucketnfs/bucketnfs.conf
if grep -q 'state_dir = "/var/lib/bucketnfs"' "$conf" &&
   grep -q 'dirs = ( "/var/cache/bucketnfs" )' "$conf" &&
   grep -q 'root = "/var/lib/bucketnfs/buckets"' "$conf" &&
   grep -q 'StateDirectory=bucketnfs bucketnfs/buckets' "$unit" &&
   grep -q 'CacheDirectory=bucketnfs' "$unit"; then
    ok "installed config's folders are the ones the unit creates"
else fail "installed config's folders are the ones the unit creates" "$(grep -n 'state_dir\|dirs\|root' "$conf")"; fi

# ---- systemd-analyze verify.  It checks that ExecStart's program exists
# and that the man pages of Documentation= are found, so the unit verified
# is a copy whose paths point into DESTDIR (nothing is installed on this
# machine), and MANPATH is DESTDIR's man folder.  Otherwise unchanged.
if ! command -v systemd-analyze >/dev/null; then
    fail "systemd-analyze verify" "systemd-analyze missing (Debian package systemd)"
else
    mkdir -p "$IT_TMP/verify"
    vunit=$IT_TMP/verify/bucketnfsd.service
    sed -e "s|=/usr/sbin/|=$D/usr/sbin/|" -e "s|-c /etc/|-c $D/etc/|" "$unit" >"$vunit"
    if MANPATH=$D/usr/share/man systemd-analyze verify "$vunit" >"$IT_TMP/verify.out" 2>&1 &&
       [ ! -s "$IT_TMP/verify.out" ]; then
        ok "systemd-analyze verify: no complaint"
    else fail "systemd-analyze verify: no complaint" "$(head -5 "$IT_TMP/verify.out" | tr '\n' ' ')"; fi
    # The check has teeth: a unit whose program is missing is refused.
    sed -i "s|^ExecStart=$D|ExecStart=$IT_TMP/nonexistent|" "$vunit"
    if ! MANPATH=$D/usr/share/man systemd-analyze verify "$vunit" >/dev/null 2>&1; then
        ok "systemd-analyze verify refuses a unit whose program is missing"
    else fail "systemd-analyze verify refuses a unit whose program is missing" ""; fi
fi

# ---- man pages render cleanly
for page in bucketnfsd bucketnfs; do
    f=$D/usr/share/man/man8/$page.8
    warn=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
    text=$(MANWIDTH=80 man -l "$f" 2>/dev/null)
    if [ -z "$warn" ] && grep -q '^NAME' <<<"$text" && grep -q '^EXIT STATUS' <<<"$text"; then
        ok "man $page(8) renders without warnings"
    else fail "man $page(8) renders without warnings" "$(head -3 <<<"$warn" | tr '\n' ' ')"; fi
done
text=$(MANWIDTH=80 man -l "$D/usr/share/man/man8/bucketnfs.8" 2>/dev/null)
# The commands are those `bucketnfs --help` lists (two spaces, a lower-case word).
cmds=$("$D/usr/bin/bucketnfs" --help | sed -n '/^commands:/,/^options:/s/^  \([a-z][a-z]*\)\b.*/\1/p')
missing=
for cmd in $cmds; do
    grep -qE "^       $cmd\b" <<<"$text" || missing+=" $cmd"
done
if [ -n "$cmds" ] && [ -z "$missing" ]; then ok "bucketnfs(8) covers every admin command ($(echo $cmds))"
else fail "bucketnfs(8) covers every admin command" "--help lists: $(echo $cmds); missing:$missing"; fi
text=$(MANWIDTH=80 man -l "$D/usr/share/man/man8/bucketnfsd.8" 2>/dev/null)
if grep -q 'SIGHUP' <<<"$text" && grep -q '/etc/bucketnfs/bucketnfs.conf' <<<"$text"; then
    ok "bucketnfsd(8) names signals and the installed files"
else fail "bucketnfsd(8) names signals and the installed files" ""; fi

# ---- the installed daemon accepts the installed configuration
"$D/usr/sbin/bucketnfsd" -t -c "$conf" >"$IT_TMP/t.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q "configuration OK (1 store(s), 1 export(s))" "$IT_TMP/t.out"; then
    ok "installed bucketnfsd -t accepts the installed config"
else fail "installed bucketnfsd -t accepts the installed config" "rc=$rc $(cat "$IT_TMP/t.out")"; fi

# ---- installing again keeps what the operator edited
echo '# edited by the operator' >>"$conf"
echo '# edited by the operator' >>"$D/etc/bucketnfs/exports.conf"
if make "${make_args[@]}" install PREFIX=/usr DESTDIR="$D" >"$IT_TMP/install2.out" 2>&1 &&
   tail -1 "$conf" | grep -q 'edited by the operator' &&
   tail -1 "$D/etc/bucketnfs/exports.conf" | grep -q 'edited by the operator' &&
   cmp -s "$D/etc/bucketnfs/bucketnfs.conf.example" "$IT_ROOT/$(basename "$IT_BUILD")/install/bucketnfs.conf" &&
   [ -f "$D/etc/bucketnfs/exports.conf.example" ] &&
   grep -q 'exists: kept' "$IT_TMP/install2.out"; then
    ok "a second install keeps edited configs, puts the new ones in *.example"
else fail "a second install keeps edited configs, puts the new ones in *.example" \
    "$(tail -3 "$IT_TMP/install2.out" | tr '\n' ' ')"; fi

# ---- PREFIX=/usr/local, SYSTEMDUNITDIR overridden
L=$IT_TMP/local
if make "${make_args[@]}" install PREFIX=/usr/local DESTDIR="$L" SYSTEMDUNITDIR=/etc/systemd/system \
       >"$IT_TMP/install3.out" 2>&1 &&
   [ -x "$L/usr/local/sbin/bucketnfsd" ] && [ -x "$L/usr/local/bin/bucketnfs" ] &&
   [ -f "$L/usr/local/share/man/man8/bucketnfsd.8" ] &&
   [ -f "$L/usr/local/etc/bucketnfs/bucketnfs.conf" ] &&
   grep -qx 'ExecStart=/usr/local/sbin/bucketnfsd -f -c /usr/local/etc/bucketnfs/bucketnfs.conf' \
       "$L/etc/systemd/system/bucketnfsd.service"; then
    ok "PREFIX=/usr/local and SYSTEMDUNITDIR are honored"
else fail "PREFIX=/usr/local and SYSTEMDUNITDIR are honored" "$(tail -3 "$IT_TMP/install3.out" | tr '\n' ' ')"; fi
# The tool finds PREFIX/etc/bucketnfs/bucketnfs.conf beside itself: its
# state_dir names the socket it looks for.
env -u BUCKETNFS_CONF "$L/usr/local/bin/bucketnfs" status >"$IT_TMP/tool.out" 2>&1; rc=$?
if [ -S /var/lib/bucketnfs/bucketnfsd.sock ]; then
    echo "skip - installed tool finds its config: a bucketnfsd runs on this machine"
elif [ $rc = 3 ] && grep -q 'no socket at /var/lib/bucketnfs/bucketnfsd.sock' "$IT_TMP/tool.out"; then
    ok "installed bucketnfs finds the installed config without -c"
else fail "installed bucketnfs finds the installed config without -c" "rc=$rc $(cat "$IT_TMP/tool.out")"; fi

# ---- detached, the installed daemon logs to syslog
# /dev/log is this machine's: the daemon runs in a private mount namespace
# whose /dev holds the usual device nodes and a /dev/log socket of ours.
# The installed config with the folders, ports and address of a test; a
# metrics address that is not local makes one err-level line.
S=$IT_TMP/syslog
mkdir -p "$S/dev" "$S/buckets/demo"
echo hello >"$S/buckets/demo/hello.txt"
sed -e "s|\"/var/lib/bucketnfs\"|\"$S/state\"|" -e "s|\"/var/cache/bucketnfs\"|\"$S/cache\"|" \
    -e "s|\"/var/lib/bucketnfs/buckets\"|\"$S/buckets\"|" -e 's|listen = "0.0.0.0"|listen = "127.0.0.1"|' \
    -e 's|nfs_port = 2049|nfs_port = 0|' -e 's|mount_port = 20048|mount_port = 0|' \
    -e 's|rpcbind = true|rpcbind = false|' -e 's|size = "8G"|size = "256M"|' \
    -e 's|# metrics = "127.0.0.1:9102";|metrics = "192.0.2.1:9102";|' \
    "$conf" >"$S/bucketnfs.conf"
cp "$D/etc/bucketnfs/exports.conf" "$S/exports.conf"
cat >"$S/listen.py" <<'PY'
# Receive syslog datagrams on argv[1]; write each as one JSON string line to argv[2].
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        out.write(json.dumps(s.recv(65536).decode(errors="replace")) + "\n")
        out.flush()
PY
cat >"$S/inns.sh" <<'SH'
# Runs in the private mount namespace: $1 = folder, $2 = the daemon.
set -eu
S=$1 BIN=$2
for n in null zero full random urandom; do
    touch "$S/dev/$n"; mount --bind "/dev/$n" "$S/dev/$n"
done
python3 "$S/listen.py" "$S/dev/log" "$S/syslog.jsonl" & lp=$!
for _ in $(seq 50); do [ -S "$S/dev/log" ] && break; sleep 0.1; done
mount --bind "$S/dev" /dev
"$BIN" -c "$S/bucketnfs.conf" >"$S/daemon.out" 2>&1; echo "rc=$?" >>"$S/daemon.out"
for _ in $(seq 100); do [ -f "$S/state/bucketnfsd.ports" ] && break; sleep 0.1; done
pid=$(sed -n 's/^pid=//p' "$S/state/bucketnfsd.ports")
echo "pid=$pid" >>"$S/daemon.out"
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
sleep 0.3
kill "$lp"
SH
uns=(unshare -m --propagation private)
[ "$(id -u)" = 0 ] || uns=(unshare -Urm --propagation private)
if ! "${uns[@]}" true 2>/dev/null; then
    echo "skip - syslog check: no private mount namespace here (${uns[*]} fails)"
else
    timeout 60 "${uns[@]}" bash "$S/inns.sh" "$S" "$D/usr/sbin/bucketnfsd" >"$IT_TMP/inns.out" 2>&1
    pid=$(sed -n 's/^pid=//p' "$S/daemon.out")
    # Detached, the daemon outlives a namespace script that timed out.
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        fail "detached daemon stops on SIGTERM" "pid $pid still runs: killed"
        kill -KILL "$pid"
    fi
    log=$S/syslog.jsonl
    if grep -qx 'rc=0' "$S/daemon.out" && [ "$(grep -vc '^rc=\|^pid=' "$S/daemon.out")" = 0 ]; then
        ok "detached: the starting process exits 0 and prints nothing"
    else fail "detached: the starting process exits 0 and prints nothing" "$(cat "$S/daemon.out" "$IT_TMP/inns.out" | tr '\n' ' ')"; fi
    # facility daemon (3 << 3 = 24) + notice (5) = 29, + err (3) = 27
    if [ -n "$pid" ] && grep -q "^\"<29>.*bucketnfsd\[$pid\]: serving 1 export(s)" "$log" &&
       grep -q "^\"<29>.*bucketnfsd\[$pid\]: signal 15: stopping" "$log"; then
        ok "syslog gets notice lines as bucketnfsd[pid], facility daemon"
    else fail "syslog gets notice lines as bucketnfsd[pid], facility daemon" "$(head -c 600 "$log" 2>&1)"; fi
    if grep -q "^\"<27>.*bucketnfsd\[$pid\]: metrics: listen on 192.0.2.1:9102" "$log"; then
        ok "syslog gets an err line at level err"
    else fail "syslog gets an err line at level err" "$(head -c 600 "$log" 2>&1)"; fi
    if [ -s "$log" ] && ! grep -q '\\n' "$log"; then ok "syslog: one line per event (no newline inside a message)"
    else fail "syslog: one line per event (no newline inside a message)" "$(grep '\\n' "$log" | head -2)"; fi
fi

it_done

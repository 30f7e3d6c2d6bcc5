#!/usr/bin/env bash
# seed-demo.sh DIR [demo|test] - fill a dir-store bucket folder with data
# shaped like autonomous-driving recordings: a few long sequential sensor
# logs and a folder of small camera frames, three levels deep.
#   demo: what `make run` serves (about 200 MB)
#   test: a smaller tree with the edge cases the integration tests need
set -euo pipefail
dir=$1
kind=${2:-demo}
mkdir -p "$dir"

rand() { # rand FILE BYTES
    head -c "$2" /dev/urandom >"$1"
}

if [ "$kind" = demo ]; then
    log_mb=64; frames=300; frame_kb=120
else
    log_mb=5; frames=40; frame_kb=60
fi

for drive in drive-0001 drive-0002; do
    d="$dir/$drive"
    mkdir -p "$d/lidar" "$d/camera/front" "$d/can"
    rand "$d/lidar/sweeps.bin" $((log_mb * 1024 * 1024))
    rand "$d/can/bus0.log" $((log_mb * 1024 * 1024 / 4 + 17))
    for i in $(seq -w 1 "$frames"); do
        rand "$d/camera/front/frame_$i.jpg" $((frame_kb * 1024 + 10#$i))
    done
    printf '{"drive": "%s", "vehicle": "test-7", "sensors": ["lidar", "camera", "can"]}\n' \
        "$drive" >"$d/meta.json"
done

if [ "$kind" = test ]; then
    : >"$dir/empty.txt"
    printf 'x' >"$dir/one-byte"
    rand "$dir/page.bin" 4096
    rand "$dir/page-minus-one.bin" 4095
    rand "$dir/mib-plus-one.bin" $((1024 * 1024 + 1))
    mkdir -p "$dir/empty-dir" "$dir/a/b/c"
    echo "deep" >"$dir/a/b/c/leaf.txt"
    echo "mid" >"$dir/a/b/mid.txt"
    echo "secret" >"$dir/private.txt"
    chmod 0600 "$dir/private.txt"
    ln -sfn drive-0001/meta.json "$dir/latest-meta"
    echo "slow" >"$dir/slow-object.bin"
    rand "$dir/fast-object.bin" 65536
fi
echo "seeded $dir ($kind)"

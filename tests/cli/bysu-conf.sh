#!/bin/bash
# bysu.conf's repository URL is checked when the file is read: a URL no store
# takes (an unknown scheme, a bucket, account or container name that cannot
# be, an empty value, a relative path) is a configuration error of every verb
# that reads the file - exit status 2, the message naming the file, the line
# and the key - and nothing is run, created or contacted.
set -u; . "$(dirname "$0")/../lib/lib.sh"; t_tmpdir
BYSU=$(dirname "$BURRY")/bysu

cd "$T_TMP" || exit 1
C=$T_TMP/bysu.conf
# an infrastructure job whose service nothing serves: were it run, it would
# fail (exit 1) rather than be refused (exit 2)
DEAD=$(free_port)
for url in 's4://x' 'azure://' 's3://' 'gs://Bad_Bucket' 'file://rel' '' 'rel/repo' 'S3://bucket'; do
    printf '[repository]\nkeep = 2\nurl = %s\n\n[job zk]\nsource = zk://127.0.0.1:%s\ntimeout = 2\n' "$url" "$DEAD" >"$C"
    for verb in run ls 'get zk' verify prune; do
        # shellcheck disable=SC2086
        run_bysu $verb -c "$C"
        expect_eq "url = '$url': bysu $verb exits 2 (a configuration error)" 2 "$RC"
        expect_match "url = '$url': bysu $verb names the file, the line and the key" \
            "^bysu: '$C' line 3: 'url'" "$ERR"
        expect_eq "url = '$url': bysu $verb prints nothing on standard output" "" "$OUT"
    done
    expect_eq "url = '$url': nothing was created (no directory, no lock file)" "bysu.conf" "$(ls -A "$T_TMP")"
done
printf '[repository]\nurl = s4://x\n[job zk]\nsource = zk://127.0.0.1:%s\n' "$DEAD" >"$C"
run_bysu run -c "$C"
expect_match "the message says what is wrong with the URL" \
    "line 2: 'url': unknown store 's4' in 's4://x' \(known: " "$ERR"
printf '[repository]\nurl = S3://bucket\n[job zk]\nsource = zk://127.0.0.1:%s\n' "$DEAD" >"$C"
run_bysu ls -c "$C"
expect_match "a relative path is refused as such" \
    "line 2: 'url' wants an absolute path or a store URL, not the relative path 'S3://bucket'" "$ERR"

# well-formed URLs load: the infrastructure job then runs, and fails (exit 1)
# on its service, not on the configuration
printf '[repository]\nurl = %s\n[job zk]\nsource = zk://127.0.0.1:%s\ntimeout = 2\n' "$T_TMP/repo" "$DEAD" >"$C"
run_bysu run -c "$C" --json
expect_eq "an absolute path: the run goes ahead (the job fails on its service: exit 1)" "1 failed" \
    "$RC $(jget 'd["jobs"][0]["result"]')"
expect_match "... naming the service" 'cannot reach ZooKeeper' "$(jget 'd["jobs"][0]["message"]')"

t_done

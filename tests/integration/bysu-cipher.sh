#!/bin/bash
# The ssh cipher bysu asks for, read off a real sshd's log (LogLevel DEBUG1
# names the cipher each connection agreed on): by default AES-GCM first
# among what ssh's own configuration allows, never one it leaves out; a
# node's `ciphers = LIST` as given; `ciphers = default` leaves ssh alone; a
# bad list fails the configuration; ssh's allocator settings (unless the
# environment has its own). ssh's configuration is varied through a
# stand-in `ssh` first on PATH that runs the real client with `-F FILE`.
set -u
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/sshd.sh"
BYSU=$(dirname "$BURRY")/bysu
BYSU=$(cd "$(dirname "$BYSU")" && pwd)/$(basename "$BYSU")
t_tmpdir
trap 'sshd_stop_all; t_cleanup' EXIT

printf '[snapshot s]\ncommand = echo hello\n' >"$T_TMP/agent.conf"
SSHD_LOG_LEVEL=DEBUG1 sshd_start n1 "$BYSU agent -c $T_TMP/agent.conf" || exit 1
P1=$SSHD_PORT
LOG=$T_TMP/sshd-n1/log
REAL_SSH=$(command -v ssh)

conf() { # conf [CIPHERS-LINE]
    printf '[repository]\nurl = %s\nkeep = 2\n' "$T_TMP/repo"
    printf '[node n1]\nhost = 127.0.0.1\nport = %s\nuser = root\nidentity = %s\nknown_hosts = %s\n%s\n' \
        "$P1" "$T_TMP/client-key" "$T_TMP/known_hosts" "${1:-}"
    printf '[job j]\nnode = n1\nsnapshot = s\n'
}

# shim FILE-OR-fail: the ssh that bysu finds first on PATH
shim() {
    mkdir -p "$T_TMP/shim"
    if [ "$1" = fail ]; then
        printf '#!/bin/sh\n[ "$1" = -G ] && exit 255\nexec %s "$@"\n' "$REAL_SSH" >"$T_TMP/shim/ssh"
    else
        printf '#!/bin/sh\nexec %s -F %s "$@"\n' "$REAL_SSH" "$1" >"$T_TMP/shim/ssh"
    fi
    chmod +x "$T_TMP/shim/ssh"
}

# agreed NAME CONF [PATH]: runs the job; sets CIPHER to what the connection agreed on
agreed() {
    local before
    before=$(grep -c 'kex: client->server cipher:' "$LOG")
    conf "${3:-}" >"$T_TMP/c.conf"
    if [ -n "${2:-}" ]; then
        PATH="$2:$PATH" run_bysu run -c "$T_TMP/c.conf"
    else
        run_bysu run -c "$T_TMP/c.conf"
    fi
    expect_eq "$1: the job succeeds" 0 "$RC"
    CIPHER=$(grep 'kex: client->server cipher:' "$LOG" | tail -n +$((before + 1)) | sed -n 's/.*client->server cipher: \([^ ]*\).*/\1/p' | tail -n 1)
}

SSH_FIRST=$(ssh -G -p "$P1" root@127.0.0.1 2>/dev/null | sed -n 's/^ciphers \([^,]*\).*/\1/p')
SSH_HAS_GCM=$(ssh -G -p "$P1" root@127.0.0.1 2>/dev/null | grep -c '^ciphers .*aes128-gcm@openssh.com')

if [ "$SSH_HAS_GCM" = 1 ]; then
    agreed "default" ""
    expect_eq "by default the connection uses AES-GCM" "aes128-gcm@openssh.com" "$CIPHER"
else
    not_ok "this machine's ssh configuration does not allow aes128-gcm@openssh.com, so the default cannot be checked"
fi

agreed "ciphers = default" "" "ciphers = default"
expect_eq "ciphers = default leaves ssh's own first choice" "$SSH_FIRST" "$CIPHER"

agreed "ciphers = LIST" "" "ciphers = aes256-ctr"
expect_eq "ciphers = LIST is passed as it is" "aes256-ctr" "$CIPHER"

agreed "ciphers = ^LIST" "" "ciphers = ^aes192-ctr"
expect_eq "ssh's own list syntax works (^ puts a cipher first)" "aes192-ctr" "$CIPHER"

printf 'Ciphers aes256-ctr,aes192-ctr\n' >"$T_TMP/no-gcm.conf"
shim "$T_TMP/no-gcm.conf"
agreed "ssh config without AES-GCM" "$T_TMP/shim"
expect_eq "AES-GCM is not enabled when ssh's configuration leaves it out" "aes256-ctr" "$CIPHER"

printf 'Ciphers aes256-ctr,aes256-gcm@openssh.com\n' >"$T_TMP/some-gcm.conf"
shim "$T_TMP/some-gcm.conf"
agreed "ssh config with AES-GCM last" "$T_TMP/shim"
expect_eq "the AES-GCM cipher ssh's configuration allows goes first" "aes256-gcm@openssh.com" "$CIPHER"

shim fail
agreed "ssh -G failing" "$T_TMP/shim"
expect_eq "when ssh cannot say its configuration, bysu leaves ssh's choice alone" "$SSH_FIRST" "$CIPHER"

# The allocator settings bysu gives the ssh that pulls a snapshot (not
# `ssh -G`), unless the environment has GLIBC_TUNABLES of its own.
cat >"$T_TMP/shim/ssh" <<SH
#!/bin/sh
[ "\$1" = -G ] || printf '%s\n' "\${GLIBC_TUNABLES-unset}" >>"$T_TMP/tunables"
exec $REAL_SSH "\$@"
SH
: >"$T_TMP/tunables"
unset GLIBC_TUNABLES
agreed "tunables" "$T_TMP/shim"
expect_eq "ssh gets larger malloc thresholds, once" \
    "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=8388608" "$(cat "$T_TMP/tunables")"
: >"$T_TMP/tunables"
GLIBC_TUNABLES=glibc.malloc.trim_threshold=1048576 agreed "operator's tunables" "$T_TMP/shim"
expect_eq "the operator's GLIBC_TUNABLES go to ssh as they are" \
    "glibc.malloc.trim_threshold=1048576" "$(cat "$T_TMP/tunables")"

for bad in 'aes128-gcm@openssh.com aes256-ctr' 'aes;rm' ''; do
    conf "ciphers = $bad" >"$T_TMP/bad.conf"
    run_bysu run -c "$T_TMP/bad.conf"
    expect_eq "ciphers = '$bad' is a usage error" 2 "$RC"
    expect_match "its message names the key and the line" "line 1?[0-9].*'ciphers' wants default or a list of ssh cipher names" "$ERR"
done
expect_eq "no snapshot came from the refused configurations" 2 "$("$BYSU" ls -c "$T_TMP/c.conf" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["snapshots"]))')"

t_done

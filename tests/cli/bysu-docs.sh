#!/bin/bash
# bysu's operability files: docs/bysu.conf.5 renders without warnings and
# documents every section and key the configuration parsers accept (read from
# the ini handlers in collect.c and agent.c), with the defaults the code sets;
# the systemd units in packaging/systemd are valid and have the keys they need.
set -u; . "$(dirname "$0")/../lib/lib.sh"; t_tmpdir

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PAGE=$ROOT/docs/bysu.conf.5
UNITS=$ROOT/packaging/systemd
BYSU=${BYSU:-$(dirname "$BURRY")/bysu}

# --- the page renders, without warnings ---
if [ ! -f "$PAGE" ]; then
    not_ok "docs/bysu.conf.5 exists"
    t_done; exit
fi
if command -v man >/dev/null; then
    WARN=$(MANWIDTH=80 man -l --warnings=w "$PAGE" 2>&1 >/dev/null)
    TEXT=$(MANWIDTH=80 MAN_KEEP_FORMATTING= man -l "$PAGE" 2>/dev/null | col -b 2>/dev/null)
else
    WARN=$(groff -man -ww -z "$PAGE" 2>&1)
    TEXT=$(groff -man -Tutf8 -P-cbou "$PAGE" 2>/dev/null)
fi
expect_eq "bysu.conf.5 renders without warnings" "" "$WARN"
expect_match "bysu.conf.5 renders a NAME section" '^NAME' "$TEXT"
expect_match "bysu.conf.5 names bysu.conf" 'bysu\.conf' "$(printf '%s' "$TEXT" | sed -n '/^NAME/,/^[A-Z]/p')"

# --- every section and key the parsers accept is documented ---
# handler FILE: the body of FILE's ini handler (conf_handler).
handler() { awk '/^static int conf_handler\(/ {on = 1} on {print} on && /^}/ {exit}' "$1"; }
# keys_of TEXT: the key names it compares against (strcmp(key, "x") or MATCH("sec", "x")).
keys_of() {
    { printf '%s\n' "$1" | grep -oE 'strcmp\(key, *"[^"]+"\)' | sed -E 's/.*"([^"]+)".*/\1/'
      printf '%s\n' "$1" | grep -oE 'MATCH\( *"[^"]*", *"[^"]+" *\)' | sed -E 's/.*"([^"]+)" *\)$/\1/'; } | sort -u
}
# sections_of TEXT: "name" for strcmp(section, "name"), "name NAME" for a prefix.
sections_of() {
    { printf '%s\n' "$1" | grep -oE 'strcmp\(section, *"[^"]+"\)' | sed -E 's/.*"([^"]+)".*/\1/'
      printf '%s\n' "$1" | grep -oE 'strncmp\(section, *"[^" ]+ "' | sed -E 's/.*"([^" ]+) "/\1 NAME/'
      printf '%s\n' "$1" | grep -oE 'MATCH\( *"[^"]+"' | sed -E 's/.*"([^"]+)"/\1/'; } | sort -u
}

for src in collect agent; do
    H=$(handler "$ROOT/src/core/$src.c")
    KEYS=$(keys_of "$H")
    SECTIONS=$(sections_of "$H")
    min=4; [ $src = collect ] && min=11
    n=$(printf '%s\n' "$KEYS" | grep -c .)
    if [ "$n" -ge "$min" ]; then
        ok "found the keys of $src.c's ini handler ($n)"
    else
        not_ok "found the keys of $src.c's ini handler (only $n, expected at least $min)"
    fi
    if [ -n "$SECTIONS" ]; then ok "found the sections of $src.c's ini handler"; else not_ok "found the sections of $src.c's ini handler"; fi
    for k in $KEYS; do
        # documented as a tagged paragraph ".BI key " = " VALUE"
        if grep -Eq "^\.BI? \"?$k\"? \" = \"" "$PAGE"; then
            ok "bysu.conf.5 documents key '$k' ($src.c)"
        else
            not_ok "bysu.conf.5 documents key '$k' ($src.c)"
        fi
    done
    while IFS= read -r s; do
        [ -n "$s" ] || continue
        if printf '%s' "$TEXT" | grep -qF "[$s]"; then
            ok "bysu.conf.5 documents section [$s] ($src.c)"
        else
            not_ok "bysu.conf.5 documents section [$s] ($src.c)"
        fi
    done <<<"$SECTIONS"
done

# --- the defaults the code sets are the ones the page states ---
C=$(cat "$ROOT/src/core/collect.c")
d_keep=$(printf '%s' "$C" | grep -oE 'c->keep = [0-9]+' | grep -oE '[0-9]+$')
d_timeout=$(printf '%s' "$C" | grep -oE 'j->timeout = [0-9]+' | grep -oE '[0-9]+$')
d_port=$(printf '%s' "$C" | grep -oE 'n->port = [0-9]+' | grep -oE '[0-9]+$')
FLAT=$(printf '%s' "$TEXT" | tr -s ' \t\n' ' ')
for d in "keep:${d_keep:-?}" "timeout:${d_timeout:-?}" "port:${d_port:-?}"; do
    expect_match "bysu.conf.5 states the default $d" "${d%%:*} = [A-Z]+ .{0,400}Default ${d#*:}\b" "$FLAT"
done
expect_match "bysu.conf.5 shows the forced command" 'command="[^"]*bysu agent[^"]*",restrict' "$TEXT"
expect_match "bysu.conf.5 has an example" '^EXAMPLE' "$TEXT"

# --- the systemd units ---
SVC=$UNITS/bysu.service TMR=$UNITS/bysu.timer
for f in "$SVC" "$TMR"; do
    check "$(basename "$f") exists" test -f "$f"
done
# key FILE SECTION KEY REGEX: the unit sets KEY (matching REGEX) in [SECTION]
key() {
    awk -v s="[$2]" '/^\[/ {in_s = ($0 == s)} in_s' "$1" 2>/dev/null | grep -Eq "^$3=$4\$"
}
check "bysu.service is Type=oneshot" key "$SVC" Service Type oneshot
check "bysu.service runs 'bysu run'" key "$SVC" Service ExecStart '/usr/local/bin/bysu run( .*)?'
check "bysu.service: ProtectSystem=strict" key "$SVC" Service ProtectSystem strict
check "bysu.service: ReadWritePaths for the repository" key "$SVC" Service ReadWritePaths '.*/var/backups/bysu.*'
check "bysu.service: a missing repository directory does not fail the unit ('-')" \
    key "$SVC" Service ReadWritePaths '-/var/backups/bysu'
check "bysu.service: object-store credentials from an optional EnvironmentFile" \
    key "$SVC" Service EnvironmentFile '-/etc/bysu/bysu.env'
expect_match "bysu.conf.5 names the unit's environment file" '/etc/bysu/bysu\.env' "$TEXT"
check "bysu.service: PrivateTmp" key "$SVC" Service PrivateTmp '(yes|true|on|1)'
check "bysu.service: NoNewPrivileges" key "$SVC" Service NoNewPrivileges '(yes|true|on|1)'
check "bysu.service: idle I/O class" key "$SVC" Service IOSchedulingClass '(idle|3)'
check "bysu.service: Nice" key "$SVC" Service Nice '[0-9]+'
check "bysu.timer: OnCalendar=daily" key "$TMR" Timer OnCalendar daily
check "bysu.timer: RandomizedDelaySec" key "$TMR" Timer RandomizedDelaySec '.+'
check "bysu.timer: Persistent" key "$TMR" Timer Persistent '(yes|true|on|1)'
check "bysu.timer: WantedBy=timers.target" key "$TMR" Install WantedBy timers.target

if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart= to exist: point it at the binary under test
    mkdir -p "$T_TMP/units"
    exe=$BYSU; [ -x "$exe" ] || exe=$(command -v true)
    sed "s|^ExecStart=/usr/local/bin/bysu|ExecStart=$exe|" "$SVC" >"$T_TMP/units/bysu.service"
    cp "$TMR" "$T_TMP/units/bysu.timer"
    # it exits 0 on settings it ignores, so any message at all fails
    V=$(cd "$T_TMP/units" && systemd-analyze verify --man=no bysu.service bysu.timer 2>&1)
    RC=$?
    expect_eq "systemd-analyze verify exits 0" 0 "$RC"
    expect_eq "systemd-analyze verify says nothing" "" "$V"
else
    not_ok "systemd-analyze is missing (scripts/setup.sh installs the systemd package)"
fi

# --- make install puts the programs and the three pages in place ---
make -s -C "$ROOT" install DESTDIR="$T_TMP/inst" PREFIX=/usr >"$T_TMP/install.log" 2>&1
expect_eq "make install DESTDIR=... exits 0" 0 "$?"
expect_eq "... installing burry, bysu and the man pages" \
    "bin/burry bin/bysu share/man/man1/burry.1 share/man/man1/bysu.1 share/man/man5/bysu.conf.5" \
    "$(cd "$T_TMP/inst/usr" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ' | sed 's/ $//')"
check "... the installed bysu runs" "$T_TMP/inst/usr/bin/bysu" --version

t_done

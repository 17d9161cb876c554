# tests/deploy/systemd.sh - the units in deploy/systemd pass
# `systemd-analyze verify` with no complaint at all (it reports unknown
# directives as warnings and still exits 0, so any output fails the test),
# and keep the properties docs/DEPLOY.md promises: hardening, keys from
# LoadCredential=, state in StateDirectory=, restart on failure.  The
# ExecStart paths are pointed at this build, since verify checks that the
# programs exist; the installed units are verified again by deb.sh.
. "$(dirname "$0")/lib.sh"
need systemd-analyze "apt-get install systemd"

units=$NAS_SOURCE_DIR/deploy/systemd
mkdir -p "$T/units"
sed "s|/usr/bin/|$NAS_BIN_DIR/|g" "$units/nas-master@.service" >"$T/units/nas-master@quick.service"
sed "s|/usr/bin/|$NAS_BIN_DIR/|g" "$units/nas-worker@.service" >"$T/units/nas-worker@1.service"

# verify loads the whole dependency tree of a unit; it runs with --man=no
# because this build's man pages are not installed.
out=$(cd "$T/units" && systemd-analyze --man=no verify ./*.service 2>&1) ||
    fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
say "systemd-analyze verify: clean"

# A broken unit must be caught the same way (the check itself can fail).
printf '[Service]\nExecStart=%s/nas-worker\nProtectSystem=sometimes\n' "$NAS_BIN_DIR" \
    >"$T/units/broken.service"
out=$(cd "$T/units" && systemd-analyze --man=no verify ./broken.service 2>&1) || true
[ -n "$out" ] || fail "systemd-analyze verify accepted a bad ProtectSystem= value"

for u in nas-master@.service nas-worker@.service; do
    for d in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
        PrivateDevices=yes CapabilityBoundingSet= RestrictAddressFamilies= \
        SystemCallFilter=@system-service Restart=on-failure RestartPreventExitStatus=2 \
        User=nasd LoadCredential=; do
        grep -q "^$d" "$units/$u" || fail "$u lacks $d"
    done
    # Secrets reach the program only through the credentials directory.
    grep -q -- '--key %d/' "$units/$u" || fail "$u does not read its key from %d (LoadCredential)"
    grep -q 'key_secret:/etc/nasd/keys/' "$units/$u" || fail "$u does not load its secret key"
done
grep -q '^StateDirectory=nasd/%i' "$units/nas-master@.service" || fail "master has no StateDirectory"
grep -q -- '--db %S/nasd/%i/' "$units/nas-master@.service" ||
    fail "the master's database is not in its StateDirectory (a restart would not resume)"
say "hardening, credentials, state and restart directives present"

# The units' command lines, run as systemd would run them (no systemd is
# needed): specifiers filled in, each LoadCredential= copied into a
# credentials directory with mode 0400, the worker's environment file read.
# A master@tiny and a worker@1 so made must finish a tiny real campaign.
need_fmnist
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
etc=$T/etc
mkdir -p "$etc/campaigns" "$etc/keys" "$etc/authorized" "$T/state/nasd/tiny"
"$NAS_BIN_DIR/nasctl" keygen "$etc/keys/master" >/dev/null
"$NAS_BIN_DIR/nasctl" keygen "$etc/keys/worker" >/dev/null
cp "$etc/keys/worker.key" "$etc/authorized/"
port=$(free_port)
write_campaign "$etc/campaigns/tiny.yaml" tiny 4 127.0.0.1 "$port"
printf 'NAS_MASTER=tcp://127.0.0.1:%s\nNAS_WORKER_OPTS=--threads 1 --data-dir %s\n' \
    "$port" "$NAS_FMNIST" >"$etc/worker.env"

# unit_command UNIT INSTANCE CREDDIR: the ExecStart= of UNIT for INSTANCE,
# continuation lines joined, paths moved under $T; fills CREDDIR.
unit_command() {
    local unit=$1 inst=$2 cred=$3 id path
    mkdir -p "$cred"
    while IFS=: read -r id path; do
        cp "${path/\/etc\/nasd/$etc}" "$cred/$id"
        chmod 400 "$cred/$id"
    done < <(sed -n 's/^LoadCredential=//p' "$unit")
    sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*//; ta' "$unit" | sed -n 's/^ExecStart=//p' |
        sed -e "s|%i|$inst|g" -e "s|%S|$T/state|g" -e "s|%d|$cred|g" -e "s|%H|$(hostname)|g" \
            -e "s|/etc/nasd|$etc|g" -e "s|/usr/bin/|$NAS_BIN_DIR/|g"
}
master_cmd=$(unit_command "$units/nas-master@.service" tiny "$T/cred-master")
worker_cmd=$(unit_command "$units/nas-worker@.service" 1 "$T/cred-worker")
# EnvironmentFile= as systemd reads this file: KEY=VALUE lines, the value
# taken whole (spaces and all); the command's $VAR then splits it.
(while IFS='=' read -r k v; do
    case "$k" in [A-Z]*) export "$k=$v" ;; esac
done <"$etc/worker.env"
eval "exec $worker_cmd") >"$T/worker.log" 2>&1 &
nas_cleanup stop_pid "$!"
(cd "$T/state/nasd/tiny" && eval "exec $master_cmd") >"$T/master.out" 2>"$T/master.log" &
master=$!
nas_cleanup stop_pid "$master"
wait_for 240 "the unit-made master to finish" bash -c "! kill -0 $master"
wait "$master" || fail "nas-master@tiny's command failed: $(tail -n 3 "$T/master.log")"
n=$(results "$T/state/nasd/tiny/campaign.db")
[ "$n" -ge 4 ] || fail "the units' campaign recorded $n results, not 4"
grep -q "$(hostname)-1" <("$NAS_BIN_DIR/nasctl" history --db "$T/state/nasd/tiny/campaign.db" --csv) ||
    fail "no result came from the worker named by the unit ($(hostname)-1)"
say "the units' ExecStart lines, with their credentials, ran a CurveZMQ campaign of $n"

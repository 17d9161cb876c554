# tests/deploy/systemd.sh - the units in deploy/systemd pass
# `systemd-analyze verify` with no complaint at all (it reports unknown
# directives as warnings and still exits 0, so any output fails the test),
# and keep the properties docs/DEPLOY.md promises: hardening, keys from
# LoadCredential=, state in StateDirectory=, restart on failure.  The
# ExecStart paths are pointed at this build, since verify checks that the
# programs exist; the installed units are verified again by deb.sh.
# shellcheck shell=bash source=tests/deploy/lib.sh
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

need_fmnist
# The units' command lines, run as systemd would run them, must finish a
# tiny real CurveZMQ campaign (lib.sh: units_campaign); the master runs
# under strace when it is installed, for the filter check below.
have_strace=
command -v strace >/dev/null && have_strace=1
# As root, the programs run as nobody, as the units run them as nasd (SQLite,
# for one, calls fchown only as root).
run_as=
[ "$(id -u)" != 0 ] || run_as=nobody
NAS_UNIT_STRACE=${have_strace:+$T/strace-master.txt} \
    units_campaign "$units" "$T/etc" "$T/state" "$NAS_BIN_DIR" "$run_as"
say "the units' ExecStart lines, with their credentials, ran a CurveZMQ campaign"

# The system call filter must allow what the programs really call: a call
# outside it fails (EPERM), which would break the service.  The master of
# the campaign above and nas-train (the workers' training engine, OpenBLAS
# included) ran under strace; no call either made may be denied by a unit
# or missing from what it allows.
[ -n "$have_strace" ] || { echo "note: no strace here; the system call filters were not checked"; exit 0; }
ASAN_OPTIONS=detect_leaks=0 strace -f -qq -c -o "$T/strace-train.txt" "$NAS_BIN_DIR/nas-train" \
    --epochs 1 --train-subset 300 --val-size 100 --resolution 14 --threads 2 \
    --data-dir "$NAS_FMNIST" >"$T/train.log" 2>&1 || fail "nas-train under strace: $(tail -n 2 "$T/train.log")"
awk 'FNR > 2 && $NF != "total" && $NF !~ /^-/ {print $NF}' "$T"/strace-*.txt | sort -u >"$T/used"
for c in mbind socket epoll_wait; do
    grep -qx "$c" "$T/used" || fail "strace did not see $c; the traces are incomplete: $(cat "$T/used")"
done
# calls_in SET...: the system calls of filter sets, nested sets expanded.
calls_in() {
    local g w
    for g in "$@"; do
        systemd-analyze syscall-filter "$g" | tail -n +2 | tr -d ' ' | grep -v '^#\|^$' |
            while read -r w; do
                case "$w" in @*) calls_in "$w" ;; *) echo "$w" ;; esac
            done
    done
}
for u in nas-master@.service nas-worker@.service; do
    # shellcheck disable=SC2046
    calls_in $(sed -n 's/^SystemCallFilter=\([^~]\)/\1/p' "$units/$u") | sort -u >"$T/allowed"
    # shellcheck disable=SC2046
    calls_in $(sed -n 's/^SystemCallFilter=~//p' "$units/$u") | sort -u >"$T/denied"
    bad=$(comm -12 "$T/used" "$T/denied" | tr '\n' ' ')
    [ -z "$bad" ] || fail "$u denies system calls that the programs make: $bad"
    bad=$(comm -23 "$T/used" "$T/allowed" | tr '\n' ' ')
    [ -z "$bad" ] || fail "$u does not allow system calls that the programs make: $bad"
done
say "the units' system call filters allow all $(wc -l <"$T/used") calls the master and training make"

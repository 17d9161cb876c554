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

# The units' command lines, run as systemd would run them, must finish a
# tiny real CurveZMQ campaign (lib.sh: units_campaign).
need_fmnist
units_campaign "$units" "$T/etc" "$T/state" "$NAS_BIN_DIR" ""
say "the units' ExecStart lines, with their credentials, ran a CurveZMQ campaign"

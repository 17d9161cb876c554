# tests/deploy/clean.sh - the Debian package on a clean Debian 12 booted
# with systemd (issue 17's "done when"): debootstrap makes the system
# (minbase plus systemd, as a minimal server has), systemd-nspawn --boot
# runs its own systemd as PID 1, and inside it
#   - `dpkg -i nasd.deb` stops on the missing libraries and
#     `apt-get -f install` brings them from the Debian mirror;
#   - the nasd user and directories exist and the programs run;
#   - `systemctl start nas-worker@1` (CurveZMQ keys through
#     LoadCredential=, the hardened unit as shipped) joins a master running
#     OUTSIDE the container, reaches "active" only through the worker's own
#     READY=1, and finishes the campaign with it;
#   - a worker frozen with SIGSTOP is killed by the watchdog and restarted;
#   - `dpkg -r` stops and removes it and keeps the state; `dpkg -P` purges.
#
# Opt-in: it needs root, the network (a Debian mirror) and several minutes.
#   NAS_DEPLOY_CLEAN=1         run it
#   NAS_DEPLOY_DEB=FILE        the package to test (default: a Release build
#                              of this tree is made and packaged in scratch)
#   NAS_DEPLOY_ROOTFS=DIR      a debootstrapped root to copy instead of
#                              making one (it is never changed)
#   NAS_DEBIAN_MIRROR=URL      default: this machine's apt source, else
#                              http://deb.debian.org/debian
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
[ "${NAS_DEPLOY_CLEAN:-}" = 1 ] ||
    skip "opt-in: NAS_DEPLOY_CLEAN=1 (root, a Debian mirror, ~10 minutes) installs the package on a clean Debian 12 in systemd-nspawn"
need_root "debootstrap, systemd-nspawn"
need debootstrap "apt-get install debootstrap"
need systemd-nspawn "apt-get install systemd-container"
need nsenter "apt-get install util-linux"
need cpack "apt-get install cmake"

mirror=${NAS_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } |
        grep -E '^(URIs:|deb )' | grep -v security | head -n 1 |
        sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

# 1. The package, from a Release build (a sanitizer build's would need libasan).
deb=${NAS_DEPLOY_DEB:-}
if [ -z "$deb" ]; then
    say "building a Release tree to package"
    {
        cmake -S "$NAS_SOURCE_DIR" -B "$T/build" -DCMAKE_BUILD_TYPE=Release -DNAS_BUILD_TESTS=OFF &&
            cmake --build "$T/build" -j"$(nproc)"
    } >"$T/build.log" 2>&1 || fail "the Release build failed: $(tail -n 5 "$T/build.log")"
    (cd "$T" && cpack -G DEB -B "$T/pkg" --config "$T/build/CPackConfig.cmake") >"$T/cpack.log" 2>&1 ||
        fail "cpack failed: $(tail -n 5 "$T/cpack.log")"
    deb=$(ls "$T"/pkg/nasd_*.deb | head -n 1)
fi
[ -r "$deb" ] || fail "no package at '$deb'"
if dpkg-deb -f "$deb" Depends | grep -qE 'libasan|libubsan'; then
    fail "$deb depends on the sanitizers: package a Release build"
fi

# 2. A clean Debian 12 with systemd as its init.
root=$T/root
if [ -n "${NAS_DEPLOY_ROOTFS:-}" ]; then
    say "copying the clean root $NAS_DEPLOY_ROOTFS"
    cp -a "$NAS_DEPLOY_ROOTFS" "$root"
else
    say "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root" "$mirror" \
        >"$T/debootstrap.log" 2>&1 || fail "debootstrap failed: $(tail -n 5 "$T/debootstrap.log")"
fi
[ -x "$root/lib/systemd/systemd" ] || fail "the root has no systemd (debootstrap --include=systemd)"
! chroot "$root" dpkg -s nasd >/dev/null 2>&1 || fail "the clean root already has nasd"
cp "$deb" "$root/root/nasd.deb"

# Boot it.  --keep-unit and --register=no: this machine's own init is not
# systemd, so there is no manager or machined to register with; the host's
# network is shared, so the worker inside reaches a master on 127.0.0.1.
machine=nasd-clean-$$
systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive -M "$machine" \
    >"$T/nspawn.log" 2>&1 &
nspawn=$!
# SIGTERM asks nspawn to shut the container down; whatever is left of it
# (an init whose nspawn was killed) goes with its leader.
stop_container() {
    stop_pid "$nspawn"
    [ -z "${leader:-}" ] || kill -KILL "$leader" 2>/dev/null || true
}
nas_cleanup stop_container
leader=
for _ in $(seq 1 100); do
    # nspawn's first child only sets up the namespaces and goes: wait for
    # the one that became the container's systemd.
    leader=$(ps -o pid=,comm= --ppid "$nspawn" 2>/dev/null | awk '$2 == "systemd" { print $1; exit }' || true)
    [ -n "$leader" ] && break
    kill -0 "$nspawn" 2>/dev/null || fail "systemd-nspawn exited: $(tail -n 5 "$T/nspawn.log")"
    sleep 0.1
done
[ -n "$leader" ] || fail "systemd-nspawn started no init"
box() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
booted() { case $(box systemctl is-system-running 2>/dev/null) in running | degraded) return 0 ;; esac; return 1; }
for _ in $(seq 1 240); do booted && break; sleep 0.5; done
booted || fail "the container's systemd did not finish booting in 120 s: $(box systemctl \
    is-system-running 2>&1); waiting for: $(box systemctl list-jobs --no-legend 2>&1 | head -n 3)"
say "booted Debian $(cat "$root/etc/debian_version") with systemd $(box systemctl --version | head -n 1 | awk '{print $2}') as PID 1"

# 3. dpkg -i alone cannot: the libraries are missing; apt-get -f install brings them.
if box dpkg -i /root/nasd.deb >"$T/dpkg-i.log" 2>&1; then
    fail "dpkg -i succeeded on a clean system: the package declares none of the libraries it needs"
fi
grep -q "dependency problems" "$T/dpkg-i.log" || fail "dpkg -i failed otherwise: $(tail -n 5 "$T/dpkg-i.log")"
box apt-get update >"$T/apt.log" 2>&1 || fail "apt-get update failed: $(tail -n 5 "$T/apt.log")"
box env DEBIAN_FRONTEND=noninteractive apt-get -f install -y >>"$T/apt.log" 2>&1 ||
    fail "apt-get -f install failed: $(tail -n 5 "$T/apt.log")"
# shellcheck disable=SC2016 # dpkg-query's own ${Status}
[ "$(box dpkg-query -W -f '${Status}' nasd)" = "install ok installed" ] ||
    fail "nasd is not installed after apt-get -f install"
say "dpkg -i then apt-get -f install: $(grep -c '^Setting up' "$T/apt.log") packages set up"
box id nasd >/dev/null || fail "no nasd user"
[ "$(box stat -c '%U %a' /var/lib/nasd)" = "nasd 750" ] || fail "/var/lib/nasd is not nasd's, 0750"
[ "$(box stat -c %a /etc/nasd/keys)" = 700 ] || fail "/etc/nasd/keys is not 0700"
for b in nas-master nas-worker nasctl nas-train; do
    box "$b" --version >/dev/null 2>&1 || fail "the installed $b does not run: $(box "$b" --version 2>&1 | tail -n 2)"
done
box systemctl cat nas-worker@.service >/dev/null || fail "systemd does not know nas-worker@.service"

# 4. A master outside the container, with CurveZMQ keys; the worker's keypair
# is made inside with the installed nasctl and only its public half leaves.
free_port port
mkdir -p "$T/keys" "$T/auth"
"$NAS_BIN_DIR/nasctl" keygen "$T/keys/master" >/dev/null
box nasctl keygen /etc/nasd/keys/worker >/dev/null || fail "nasctl keygen in the container failed"
cp "$root/etc/nasd/keys/worker.key" "$T/auth/worker.key"
cp "$T/keys/master.key" "$root/etc/nasd/keys/master.key"
cat >"$T/campaign.yaml" <<EOF
name: clean
seed: 3
space:
  kind: nb201
strategy:
  name: evolution
  population: 4
  sample: 2
budget:
  evaluations: 24
fidelity:
  epochs: 2
listen:
  control: tcp://127.0.0.1:$port
  weights: tcp://127.0.0.1:$((port + 1))
  status: tcp://127.0.0.1:$((port + 2))
store: $T/campaign.db
EOF
"$NAS_BIN_DIR/nas-master" "$T/campaign.yaml" --synthetic --key "$T/keys/master" \
    --authorized "$T/auth" >"$T/master.log" 2>&1 &
master=$!
nas_cleanup "stop_pid $master"
wait_for 30 "the master to listen" grep -q "listening for workers" "$T/master.log"
printf 'NAS_MASTER=tcp://127.0.0.1:%s\nNAS_WORKER_OPTS=--threads 1 --synthetic-epoch-ms 300\n' \
    "$port" >"$root/etc/nasd/worker.env"

# 5. systemctl start: "active" needs the worker's READY=1 (Type=notify).
box systemctl start nas-worker@1 || fail "systemctl start nas-worker@1 failed: $(box journalctl -u nas-worker@1 --no-pager | tail -n 5)"
[ "$(box systemctl is-active nas-worker@1)" = active ] ||
    fail "nas-worker@1 is not active: $(box journalctl -u nas-worker@1 --no-pager | tail -n 5)"
host=$(box hostname)
wait_for 30 "the worker to register with the master" grep -q "$host-1" "$T/master.log"
wait_for 60 "results from the worker in the container" sh -c \
    "'$NAS_BIN_DIR/nasctl' status --db '$T/campaign.db' --json | grep -qE '\"done\":([3-9]|[1-9][0-9])'"
say "systemctl start nas-worker@1 joined the master outside (as $host-1) and returns results"

# 6. The watchdog: a frozen agent loop is killed and the unit restarts.
box mkdir -p /etc/systemd/system/nas-worker@1.service.d
printf '[Service]\nWatchdogSec=3s\n' >"$root/etc/systemd/system/nas-worker@1.service.d/watchdog.conf"
box systemctl daemon-reload
box systemctl restart nas-worker@1
box systemctl kill -s SIGSTOP nas-worker@1
restarted() { [ "$(box systemctl show -P NRestarts nas-worker@1)" -ge 1 ] && [ "$(box systemctl is-active nas-worker@1)" = active ]; }
wait_for 40 "the watchdog to restart a frozen worker" restarted
box journalctl --no-pager | grep -qi "nas-worker@1.*watchdog" ||
    fail "the journal does not say the watchdog fired: $(box journalctl --no-pager -u nas-worker@1 | tail -n 8)"
box rm -r /etc/systemd/system/nas-worker@1.service.d
box systemctl daemon-reload
say "a worker frozen with SIGSTOP was killed by the watchdog and restarted"

# The campaign ends; the worker exits 0 and stays stopped.
wait "$master" || fail "the master exited $? : $(tail -n 5 "$T/master.log")"
stopped() { [ "$(box systemctl is-active nas-worker@1)" != active ]; }
wait_for 30 "the worker to exit after the campaign" stopped
[ "$(box systemctl show -P ExecMainStatus nas-worker@1)" = 0 ] ||
    fail "the worker's last exit was $(box systemctl show -P ExecMainStatus nas-worker@1), not 0"
"$NAS_BIN_DIR/nasctl" status --db "$T/campaign.db" | grep -q "$host-1" ||
    fail "nasctl status does not name the container's worker"

# 7. dpkg -r stops and removes, keeps the state; dpkg -P purges.
box systemctl start nas-worker@1 || true # waiting for a master: prerm must stop it
box dpkg -r nasd >"$T/dpkg-r.log" 2>&1 || fail "dpkg -r failed: $(tail -n 5 "$T/dpkg-r.log")"
[ ! -e "$root/usr/bin/nas-worker" ] || fail "dpkg -r left /usr/bin/nas-worker"
[ ! -e "$root/usr/lib/systemd/system/nas-worker@.service" ] || fail "dpkg -r left the unit"
[ "$(box systemctl is-active nas-worker@1)" != active ] && [ "$(box systemctl show -P MainPID nas-worker@1)" = 0 ] ||
    fail "a worker still runs after dpkg -r"
box id nasd >/dev/null || fail "dpkg -r removed the nasd user (only purge may)"
[ -d "$root/etc/nasd/keys" ] || fail "dpkg -r removed the keys (only purge may)"
box dpkg -P nasd >"$T/dpkg-p.log" 2>&1 || fail "dpkg -P failed: $(tail -n 5 "$T/dpkg-p.log")"
! box id nasd >/dev/null 2>&1 || fail "dpkg -P left the nasd user"
[ ! -e "$root/var/lib/nasd" ] || fail "dpkg -P left /var/lib/nasd"
[ "$(box systemctl --failed --no-legend | wc -l)" = 0 ] ||
    fail "units failed in the container: $(box systemctl --failed --no-legend)"
say "dpkg -r stopped and removed it, keeping user and keys; dpkg -P purged them"

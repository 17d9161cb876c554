# tests/deploy/k8s.sh - the Kubernetes base, as far as a machine without a
# cluster can take it: `kubectl kustomize deploy/k8s` renders it,
# k8s_check.py checks the objects against each other (ports, the PVC under
# the database, keys, probes, restrictions), a broken copy is caught, and
# the master's probe command itself is run against a real master started
# from the rendered campaign (it must pass) and after that master stopped
# (it must fail).  No pod is scheduled: that needs a cluster.
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
need kubectl "not in Debian 12: https://kubernetes.io/docs/tasks/tools/"
py=/usr/bin/python3
$py -c 'import yaml' 2>/dev/null || skip "python3-yaml is not installed (apt-get install python3-yaml)"

kubectl kustomize "$NAS_SOURCE_DIR/deploy/k8s" >"$T/rendered.yaml" 2>"$T/kustomize.log" ||
    fail "kubectl kustomize failed: $(cat "$T/kustomize.log")"
out=$($py "$NAS_SOURCE_DIR/tests/deploy/k8s_check.py" "$T/rendered.yaml" "$T") || fail "${out#FAIL: }"
say "$out"

# The checker must catch a worker that dials the wrong port.
sed 's|tcp://nasd-master:5555|tcp://nasd-master:6555|' "$T/rendered.yaml" >"$T/broken.yaml"
mkdir -p "$T/broken"
if $py "$NAS_SOURCE_DIR/tests/deploy/k8s_check.py" "$T/broken.yaml" "$T/broken" >/dev/null; then
    fail "k8s_check.py accepted workers dialing a port the master does not listen on"
fi

# The probe, for real: the rendered campaign on free loopback ports, keys
# made by nasctl keygen where the pod's init container puts them.
need_fmnist
free_port port
mkdir -p "$T/keys" "$T/auth"
"$NAS_BIN_DIR/nasctl" keygen "$T/keys/master" >/dev/null
"$NAS_BIN_DIR/nasctl" keygen "$T/keys/ctl" >/dev/null
cp "$T/keys/ctl.key" "$T/auth/"
sed -e "s|tcp://0.0.0.0:5555|tcp://127.0.0.1:$port|" \
    -e "s|tcp://0.0.0.0:5556|tcp://127.0.0.1:$((port + 1))|" \
    -e "s|tcp://0.0.0.0:5557|tcp://127.0.0.1:$((port + 2))|" \
    -e "s|dir: /usr/share/datasets/fashion-mnist|dir: $NAS_FMNIST|" "$T/campaign.yaml" >"$T/live.yaml"
grep -q "127.0.0.1:$((port + 2))" "$T/live.yaml" || fail "the rendered campaign's status port is not 5557"
mapfile -t probe < <(sed -e "s|/run/nasd/keys|$T/keys|" -e "s|:5557$|:$((port + 2))|" "$T/probe")
probe[0]=$NAS_BIN_DIR/${probe[0]}
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
"$NAS_BIN_DIR/nas-master" "$T/live.yaml" --db "$T/k8s.db" --key "$T/keys/master" \
    --authorized "$T/auth" --cancel-on-stop >"$T/master.out" 2>"$T/master.log" &
master=$!
nas_cleanup stop_pid "$master"
wait_for 30 "the probe to pass against the master" "${probe[@]}"
"${probe[@]}" >"$T/probe.out" 2>&1 || fail "the probe failed: $(cat "$T/probe.out")"
stop_pid "$master"
if "${probe[@]}" >"$T/probe.out" 2>&1; then fail "the probe passed with the master stopped"; fi
say "the master's probe (${probe[*]:1:2} ...) passes against a live master and fails after it stops"

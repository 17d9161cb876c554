# deploy/lib.sh - shared by quickstart.sh and test.sh: install what is
# missing, build.  Sourced, not run.

# Debian 12 packages nasd needs to build, test and run.
NAS_DEB_PACKAGES="build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev
protobuf-c-compiler libsqlite3-dev libuv1-dev libopenblas-dev check zlib1g-dev
libyaml-dev libxxhash-dev dataset-fashion-mnist iproute2 procps help2man file
libmicrohttpd-dev"
# Debian 12 packages only the test suite needs (deploy/test.sh installs
# them; quickstart.sh does not): a private sshd for launch.sh, a private
# single-node Slurm for nasd.sbatch and strace for the units' system call
# filters (tests/deploy/); PyTorch and ONNX to load what `nasctl export`
# writes (tests/test_export.c); Prometheus, its Python client and Chromium
# to read the dashboard (tests/test_serve_http.c, test_serve_browser.c).
# qemu-user to run nas-train on emulated older CPUs (tests/test_other_cpu.c).
# Tests whose tools are missing skip, saying why.  libtorch and chromium are
# the largest downloads.
NAS_TEST_PACKAGES="openssh-server openssh-client slurm-wlm munge strace python3-torch python3-onnx
python3-prometheus-client prometheus chromium qemu-user"

nas_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# nas_install_missing PKG... : apt-get update once, then install only the
# packages dpkg does not already have.
nas_install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "nasd: all packages present"
        return 0
    fi
    echo "nasd: installing ${missing[*]}"
    nas_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    nas_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# nas_web_deps : the dashboard's browser libraries (uPlot) and the browser
# test's driver (playwright-core), pinned by master/web/package-lock.json,
# into master/web/node_modules, where the build embeds uPlot from.  npm
# comes from Debian where no node is installed.  Without network or npm the
# build still works: the page then draws every chart with its own plot.js.
nas_web_deps() {
    local web="$NAS_ROOT/master/web"
    [ -f "$web/node_modules/uplot/dist/uPlot.iife.min.js" ] &&
        [ -d "$web/node_modules/playwright-core" ] && return 0
    command -v npm >/dev/null || nas_install_missing nodejs npm || true
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error) ||
        echo "nasd: npm ci failed in master/web: the dashboard is built without uPlot" >&2
}

# nas_build DIR CMAKE-ARGS... : configure (once) and build.
nas_build() {
    local dir=$1
    shift
    nas_web_deps
    cmake -S "$NAS_ROOT" -B "$dir" "$@"
    cmake --build "$dir" -j "$(nproc)"
}

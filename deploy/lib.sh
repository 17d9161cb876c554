# deploy/lib.sh - shared by quickstart.sh and test.sh: install what is
# missing, build.  Sourced, not run.

# Debian 12 packages nasd needs to build, test and run.
NAS_DEB_PACKAGES="build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev
protobuf-c-compiler libsqlite3-dev libuv1-dev libopenblas-dev check zlib1g-dev
libyaml-dev libxxhash-dev dataset-fashion-mnist iproute2 procps help2man file"
# Debian 12 packages only the test suite needs (deploy/test.sh installs
# them; quickstart.sh does not): a private sshd for launch.sh, a private
# single-node Slurm for nasd.sbatch and strace for the units' system call
# filters (tests/deploy/); PyTorch and ONNX to load what `nasctl export`
# writes (tests/test_export.c).  Tests whose tools are missing skip, saying
# why.  libtorch and its dependencies are the largest download.
NAS_TEST_PACKAGES="openssh-server openssh-client slurm-wlm munge strace python3-torch python3-onnx"

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

# nas_build DIR CMAKE-ARGS... : configure (once) and build.
nas_build() {
    local dir=$1
    shift
    cmake -S "$NAS_ROOT" -B "$dir" "$@"
    cmake --build "$dir" -j "$(nproc)"
}

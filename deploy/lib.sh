# deploy/lib.sh - shared by quickstart.sh and test.sh: install what is
# missing, build.  Sourced, not run.

# Debian 12 packages nasd needs to build, test and run.
NAS_DEB_PACKAGES="build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev
protobuf-c-compiler libsqlite3-dev libuv1-dev libopenblas-dev check zlib1g-dev
libyaml-dev libxxhash-dev dataset-fashion-mnist iproute2 procps help2man file"
# What only the deployment tests need (tests/deploy/): a private sshd for
# launch.sh, a private single-node Slurm for nasd.sbatch, strace for the
# units' system call filters.  deploy/test.sh
# installs these too; quickstart.sh does not.
NAS_TEST_DEB_PACKAGES="openssh-server openssh-client slurm-wlm munge strace"

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

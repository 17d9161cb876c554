# tests/deploy/docker.sh - the Dockerfile: its structure always (two stages
# on Debian 12, the build stage installs every build package that
# deploy/lib.sh lists, the runtime stage installs only the nasd package and
# the data set, and runs as the uid deploy/k8s expects); then, where a
# container engine works, the image is built and its programs run.
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
df=$NAS_SOURCE_DIR/Dockerfile
[ -r "$df" ] || fail "no Dockerfile"

froms=$(grep -c '^FROM debian:12' "$df")
[ "$froms" = 2 ] || fail "the Dockerfile has $froms Debian 12 stages, not a build and a runtime stage"
build_stage=$(sed -n '/^FROM .* AS build/,/^FROM /p' "$df")
runtime_stage=$(sed -n '/^FROM .* AS build/,$p' "$df" | sed -n '2,$p' | sed -n '/^FROM /,$p')
# shellcheck source=../../deploy/lib.sh
. "$NAS_SOURCE_DIR/deploy/lib.sh"
for p in $NAS_DEB_PACKAGES; do
    case "$p" in *-dev|protobuf-c-compiler|cmake|pkg-config|build-essential)
        printf '%s' "$build_stage" | grep -qw -- "$p" ||
            fail "the build stage does not install $p, which deploy/lib.sh lists" ;;
    esac
done
if printf '%s' "$runtime_stage" | grep -qE -- '-dev\b|build-essential'; then
    fail "the runtime stage installs build packages"
fi
printf '%s' "$runtime_stage" | grep -q 'nasd_\*\.deb' || fail "the runtime stage does not install the nasd package"
user=$(printf '%s' "$runtime_stage" | sed -n 's/^USER \([0-9]*\).*/\1/p')
[ -n "$user" ] && [ "$user" != 0 ] || fail "the image does not run as a numeric non-root user"
k8s_uid=$(sed -n 's/^ *runAsUser: \([0-9]*\)/\1/p' "$NAS_SOURCE_DIR/deploy/k8s/master.yaml" | head -n 1)
[ "$user" = "$k8s_uid" ] || fail "the image's user $user is not deploy/k8s's runAsUser $k8s_uid"
say "Dockerfile: two stages, build packages as deploy/lib.sh, runtime as uid $user"

# Building the image compiles the whole project in a container (about 9
# minutes on 2 busy cores), too long for every run of the suite: opt-in.
[ "${NAS_DEPLOY_IMAGE:-}" = 1 ] ||
    skip "opt-in: NAS_DEPLOY_IMAGE=1 builds the image with podman or docker and runs it (~10 minutes; docs/DEPLOY.md says how it was run here)"
engine=
for e in podman docker; do
    if command -v "$e" >/dev/null && "$e" info >/dev/null 2>&1; then engine=$e; break; fi
done
if [ -z "$engine" ]; then
    why="podman is not installed"
    command -v podman >/dev/null && why="podman cannot run here"
    command -v docker >/dev/null && why="$why; docker has no daemon to talk to"
    skip "no working container engine ($why), so the image was not built"
fi
# podman on this kind of machine: crun refuses a host whose cgroups are in
# hybrid mode, and may not raise RLIMIT_NOFILE/NPROC to its defaults; runc
# and limits within the host's do (docs/DEPLOY.md, "Container image").
run_opts=() build_opts=()
if [ "$engine" = podman ]; then
    limits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
    run_opts=("${limits[@]}")
    build_opts=("${limits[@]}")
fi
eng=("$engine")
[ "$engine" = podman ] && command -v runc >/dev/null && eng=(podman --runtime runc)
# Both stages start from Debian 12: a machine that reaches no registry
# needs them imported (debootstrap, then `podman import`).
for base in debian:12 debian:12-slim; do
    "${eng[@]}" image inspect "$base" >/dev/null 2>&1 || "${eng[@]}" pull "$base" >/dev/null 2>&1 ||
        skip "$base is neither here nor pullable; import one: debootstrap --variant=minbase bookworm DIR && tar -C DIR -c . | podman import - $base"
done
tag=nasd-test:$$
nas_cleanup "${eng[*]} rmi -f $tag >/dev/null 2>&1"
"${eng[@]}" build "${build_opts[@]}" -t "$tag" "$NAS_SOURCE_DIR" >"$T/build.log" 2>&1 ||
    fail "${eng[*]} build failed: $(tail -n 5 "$T/build.log")"
for b in nas-master nas-worker nasctl nas-train; do
    "${eng[@]}" run --rm "${run_opts[@]}" "$tag" "$b" --help >/dev/null || fail "$b --help fails in the image"
done
[ "$("${eng[@]}" run --rm "${run_opts[@]}" "$tag" id -u)" = "$user" ] || fail "the image does not run as $user"
"${eng[@]}" run --rm "${run_opts[@]}" "$tag" nas-train --epochs 1 --train-subset 200 --val-size 100 \
    --resolution 14 >"$T/train.log" 2>&1 || fail "nas-train fails in the image: $(tail -n 3 "$T/train.log")"
say "${eng[*]} built the image; its programs run as uid $user and nas-train trains in it"

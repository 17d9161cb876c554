# One image for nas-master, nas-worker, nasctl and nas-train (docs/DEPLOY.md,
# "Container image"):
#
#   docker build -t nasd:0.1.0 .                       # or: podman build
#   docker run --rm nasd:0.1.0 nas-worker --help
#
# The build stage builds the Debian package exactly as deploy/ does; the
# runtime stage installs that package on debian:12-slim, so apt pulls the
# runtime libraries it depends on and nothing else.  The image runs as the
# non-root user nasd (uid 10001, which deploy/k8s names) in /var/lib/nasd.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler \
        libsqlite3-dev libuv1-dev libopenblas-dev zlib1g-dev libyaml-dev libxxhash-dev \
        libmicrohttpd-dev help2man file dpkg-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DNAS_BUILD_TESTS=OFF \
        -DNAS_SANITIZE=OFF -DNAS_WERROR=OFF \
 && cmake --build /build -j"$(nproc)" \
 && cd /build && cpack -G DEB

FROM debian:12-slim
# The user exists before the package, so its postinst keeps this fixed uid.
RUN groupadd --system --gid 10001 nasd \
 && useradd --system --uid 10001 --gid nasd --home-dir /var/lib/nasd --no-create-home \
        --shell /usr/sbin/nologin nasd
COPY --from=build /build/nasd_*.deb /tmp/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        /tmp/nasd_*.deb dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/* /tmp/nasd_*.deb
ENV OPENBLAS_NUM_THREADS=1
USER 10001:10001
WORKDIR /var/lib/nasd
EXPOSE 5555 5556 5557
CMD ["nas-master", "--help"]

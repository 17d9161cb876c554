# bench/dispatch/config.sh - what bench/dispatch/run and bench/dashboard/run
# share: building a bench program against the project's libraries, and the
# dispatch campaign file.  Sourced (ROOT is the repository).

#   bench_cc BUILD SRC OUT : compile SRC (C11) against BUILD's static libraries.
bench_cc() {
    cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -I"$ROOT" -I"$1" "$2" -o "$3" \
        "$1/lib/libnasworker.a" "$1/lib/libnasmaster.a" "$1/lib/libnascommon.a" \
        "$1/lib/libnasproto.a" $(pkg-config --libs --silence-errors libmicrohttpd) \
        -lzmq -luv -lsqlite3 -lyaml -lopenblas -lprotobuf-c -lz -lxxhash -lm -lpthread
}

#   dispatch_config FILE NAME TASKS PORT DB [KIND]
# writes a random-search campaign on the KIND space (nb201, the default, or
# cell: a space too large to run out of) with TASKS evaluations whose master
# listens on PORT, PORT+1, PORT+2 of 127.0.0.1 and stores into DB.
dispatch_config() {
    cat >"$1" <<YAML
name: $2
seed: 1
space:
  kind: ${6:-nb201}
strategy:
  name: random
budget:
  evaluations: $3
fidelity:
  epochs: 1
listen:
  control: tcp://127.0.0.1:$4
  weights: tcp://127.0.0.1:$(($4 + 1))
  status: tcp://127.0.0.1:$(($4 + 2))
workers:
  heartbeat_ms: 1000
  liveness: 10
store: $5
YAML
}

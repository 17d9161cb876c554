# tests/deploy/install.sh - `cmake --install` into a DESTDIR lays out what
# docs/DEPLOY.md promises, and the installed programs work from there: every
# binary answers --help, carries no RUNPATH, has a man page that documents
# its options and a bash completion that offers them, and the installed
# nas-master and nas-worker run a tiny real campaign to the end.
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
need_fmnist

root=$T/root
DESTDIR=$root cmake --install "$NAS_BUILD_DIR" --prefix /usr >"$T/install.log" 2>&1 ||
    fail "cmake --install failed: $(tail -n 3 "$T/install.log")"
bin=$root/usr/bin
for f in usr/lib/systemd/system/nas-master@.service usr/lib/systemd/system/nas-worker@.service \
    usr/share/doc/nasd/README.md usr/share/doc/nasd/copyright usr/share/doc/nasd/DEPLOY.md \
    usr/share/doc/nasd/examples/quick.yaml usr/share/doc/nasd/examples/worker.env; do
    [ -s "$root/$f" ] || fail "the install lacks /$f"
done
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
for b in nas-master nas-worker nasctl nas-train; do
    [ -x "$bin/$b" ] || fail "the install lacks /usr/bin/$b"
    "$bin/$b" --help >"$T/$b.help" 2>&1 || fail "installed $b --help exits non-zero"
    grep -q "^usage: $b" "$T/$b.help" || fail "installed $b --help prints no usage line"
    if readelf -d "$bin/$b" | grep -qE 'RPATH|RUNPATH'; then
        fail "installed $b keeps a build-tree RUNPATH"
    fi
    # The man page is help2man's rendering of this very --help.
    page=$root/usr/share/man/man1/$b.1.gz
    [ -s "$page" ] || fail "the install lacks the man page of $b"
    zcat "$page" >"$T/$b.1"
    grep -q '^\.TH' "$T/$b.1" || fail "$b.1 is not a man page"
    opt=$(grep -o -- '--[a-z][a-z-]*' "$T/$b.help" | grep -v -- '--help' | head -n 1 || true)
    if [ -n "$opt" ]; then
        grep -q -- "${opt//-/\\\\-}" "$T/$b.1" || fail "$b.1 does not document $opt"
    fi
    [ -s "$root/usr/share/bash-completion/completions/$b" ] || fail "no bash completion for $b"
done
say "layout, --help, no RUNPATH and man pages of the four installed binaries"

# Completion: run the installed script the way bash-completion does.
complete_words() {
    PATH="$bin:$PATH" bash -c '
        . "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        _nasd_complete
        printf "%s\n" "${COMPREPLY[@]}"' _ "$root/usr/share/bash-completion/completions/nasctl" "$@"
}
got=$(complete_words nasctl "")
for c in status best history keygen; do
    printf '%s\n' "$got" | grep -qx "$c" || fail "nasctl completion lacks the subcommand $c (got: $got)"
done
got=$(complete_words nas-worker --ma)
printf '%s\n' "$got" | grep -qx -- --master || fail "nas-worker --ma does not complete to --master"
printf '%s\n' "$got" | grep -qx -- --master-key || fail "nas-worker --ma does not offer --master-key"
got=$(complete_words nas-master --log-level w)
[ "$got" = warn ] || fail "--log-level w completes to '$got', not warn"
say "bash completion offers nasctl's subcommands and each binary's options"

# A tiny real campaign with the installed binaries only.
free_port port
write_campaign "$T/tiny.yaml" tiny 4 127.0.0.1 "$port"
(cd "$T" && exec "$bin/nas-master" tiny.yaml --db "$T/tiny.db" >"$T/master.out" 2>"$T/master.log") &
master=$!
nas_cleanup stop_pid "$master"
"$bin/nas-worker" --master "tcp://127.0.0.1:$port" --name installed >"$T/worker.log" 2>&1 &
nas_cleanup stop_pid "$!"
wait_for 240 "the installed master to finish" bash -c "! kill -0 $master"
wait "$master" || fail "the installed master failed: $(tail -n 3 "$T/master.log")"
n=$(results "$T/tiny.db")
[ "$n" -ge 4 ] || fail "the campaign recorded $n results, not 4"
"$bin/nasctl" best --db "$T/tiny.db" --k 1 >"$T/best.txt" || fail "installed nasctl best failed"
say "the installed binaries ran a campaign of $n evaluations: $(head -n 2 "$T/best.txt" | tail -n 1)"

# tests/deploy/deb.sh - `cpack -G DEB` builds the nasd package, and
# dpkg-deb shows what docs/DEPLOY.md promises: the binaries, units, man
# pages and completion under /usr; maintainer scripts that make the nasd
# user and /var/lib/nasd; dependencies on runtime libraries only (no -dev
# package).  The unpacked programs run and the unpacked units pass
# `systemd-analyze verify`.  With NAS_DEPLOY_SYSTEM=1 (root; it changes this
# machine) the package is also installed with dpkg -i, its user and
# directories checked, the installed units' commands run a campaign as the
# nasd user, and it is removed (the database stays) and purged.
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
need dpkg-deb "apt-get install dpkg"
need dpkg-shlibdeps "apt-get install dpkg-dev"
need cpack "apt-get install cmake"

(cd "$T" && cpack -G DEB -B "$T/pkg" --config "$NAS_BUILD_DIR/CPackConfig.cmake") \
    >"$T/cpack.log" 2>&1 || fail "cpack failed: $(tail -n 5 "$T/cpack.log")"
deb=$(ls "$T"/pkg/nasd_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "cpack made no nasd_*.deb: $(tail -n 3 "$T/cpack.log")"
say "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = nasd ] || fail "the package is called '$(field Package)', not nasd"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "wrong Architecture"
deps=$(field Depends)
say "Depends: $deps"
for lib in libzmq5 libsqlite3-0 libuv1 libprotobuf-c1 libyaml-0-2 libxxhash0 zlib1g passwd; do
    printf '%s' "$deps" | grep -q "\b$lib\b" || fail "Depends lacks $lib: $deps"
done
printf '%s' "$deps" | grep -qE 'openblas|libblas' || fail "Depends names no BLAS: $deps"
if printf '%s' "$deps" | tr ',' '\n' | grep -qE -- '-dev\b'; then
    fail "Depends names a development package: $deps"
fi

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$T/files"
for f in /usr/bin/nas-master /usr/bin/nas-worker /usr/bin/nasctl /usr/bin/nas-train \
    /usr/lib/systemd/system/nas-master@.service /usr/lib/systemd/system/nas-worker@.service \
    /usr/share/man/man1/nas-worker.1.gz /usr/share/bash-completion/completions/nasctl \
    /usr/share/doc/nasd/copyright /usr/share/doc/nasd/DEPLOY.md \
    /usr/share/doc/nasd/examples/worker.env; do
    grep -qx "$f" "$T/files" || fail "the package lacks $f"
done
if grep -qE '^/(usr/local|home|root|tmp|work)/' "$T/files"; then
    fail "the package holds files outside its prefix: $(grep -E '^/(usr/local|home|root|tmp|work)/' "$T/files" | head -n 3)"
fi

mkdir -p "$T/ctl"
dpkg-deb -e "$deb" "$T/ctl"
for s in postinst prerm postrm; do
    [ -x "$T/ctl/$s" ] || fail "the package has no executable $s"
    sh -n "$T/ctl/$s" || fail "$s is not valid sh"
done
grep -q 'useradd --system' "$T/ctl/postinst" || fail "postinst makes no nasd system user"
grep -q '/var/lib/nasd' "$T/ctl/postinst" || fail "postinst makes no /var/lib/nasd"
say "package name, runtime-only dependencies, contents and maintainer scripts"

# The unpacked programs run, and the unpacked units verify against them.
dpkg-deb -x "$deb" "$T/x"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
for b in nas-master nas-worker nasctl nas-train; do
    "$T/x/usr/bin/$b" --help >/dev/null 2>&1 || fail "the packaged $b --help fails"
done
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$T/units"
    sed "s|/usr/bin/|$T/x/usr/bin/|g" "$T/x/usr/lib/systemd/system/nas-master@.service" \
        >"$T/units/nas-master@c.service"
    sed "s|/usr/bin/|$T/x/usr/bin/|g" "$T/x/usr/lib/systemd/system/nas-worker@.service" \
        >"$T/units/nas-worker@1.service"
    out=$(cd "$T/units" && systemd-analyze --man=no verify ./*.service 2>&1) ||
        fail "the packaged units fail systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify complained about the packaged units: $out"
    say "the packaged binaries run and the packaged units verify"
fi

if [ "${NAS_DEPLOY_SYSTEM:-}" != 1 ]; then
    echo "note: dpkg -i / dpkg -P not run (set NAS_DEPLOY_SYSTEM=1 as root to install on this machine)"
    exit 0
fi
need_root "dpkg -i"
need setpriv "apt-get install util-linux"
need_fmnist
dpkg -s nasd >/dev/null 2>&1 && skip "nasd is already installed here; not touching it"
[ ! -e /etc/nasd ] && [ ! -e /var/lib/nasd ] && ! getent passwd nasd >/dev/null ||
    skip "/etc/nasd, /var/lib/nasd or a nasd user exists here; not touching them"
nas_cleanup "dpkg -P nasd >/dev/null 2>&1; rm -rf /etc/nasd /var/lib/nasd"
dpkg -i "$deb" >"$T/dpkg.log" 2>&1 || fail "dpkg -i failed: $(tail -n 5 "$T/dpkg.log")"
getent passwd nasd >/dev/null || fail "dpkg -i made no nasd user"
[ "$(stat -c %U "/var/lib/nasd")" = nasd ] || fail "/var/lib/nasd is not owned by nasd"
[ "$(stat -c %a /etc/nasd/keys)" = 700 ] || fail "/etc/nasd/keys is not 0700"
# The installed units' commands, as the nasd user, with the installed
# binaries and the keys in /etc/nasd/keys (what systemctl start would run).
units_campaign /usr/lib/systemd/system /etc/nasd /var/lib /usr/bin nasd
say "the installed units' commands ran a campaign as the nasd user"
dpkg -r nasd >"$T/dpkg.log" 2>&1 || fail "dpkg -r failed: $(tail -n 5 "$T/dpkg.log")"
[ ! -e /usr/bin/nas-master ] || fail "dpkg -r left /usr/bin/nas-master"
[ -s /var/lib/nasd/tiny/campaign.db ] || fail "dpkg -r removed the campaign databases (only purge may)"
dpkg -P nasd >"$T/dpkg.log" 2>&1 || fail "dpkg -P failed: $(tail -n 5 "$T/dpkg.log")"
[ ! -e /var/lib/nasd ] || fail "dpkg -P left /var/lib/nasd"
! getent passwd nasd >/dev/null || fail "dpkg -P left the nasd user"
say "dpkg -i made the nasd user and directories; dpkg -r kept the state; dpkg -P removed it all"

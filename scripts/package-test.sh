#!/usr/bin/env bash
# Tests the Debian package on this machine, as root: installs it over Debian's munin-async
# package, checks what it put where, runs the init script, verifies the systemd unit,
# upgrades it to a newer version, purges it, and puts Debian's package back. It changes
# the system's packages: the test command runs it after every other test.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "package test: $*" >&2; exit 1; }
check() { local what="$1"; shift; "$@" || fail "$what"; }
status() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true; }
debian_package() {
    apt-get install -y -qq --no-install-recommends munin-async >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends munin-async >/dev/null; }
}

[ "$(id -u)" = 0 ] || fail "run as root"
for tool in dpkg apt-get systemd-analyze start-stop-daemon lintian; do
    command -v "$tool" >/dev/null || fail "$tool is missing (scripts/setup.sh installs it)"
done

v1="$(bash scripts/package.sh | tail -n1)"
version="$(dpkg-deb -f "$v1" Version)"
v2="$(bash scripts/package.sh --bin-dir target/release --version "${version%-*}-2" | tail -n1)"

echo "lintian"
# Errors fail; so does any warning but the ones docs/packaging.md explains.
explained='initial-upload-closes-no-bugs'
lintian --fail-on error --pedantic "$v1" > /tmp/munin-async-lintian.txt 2>&1 ||
    { cat /tmp/munin-async-lintian.txt >&2; fail "lintian reports errors"; }
unexplained="$(grep -E '^[EW]: ' /tmp/munin-async-lintian.txt | grep -vE ": ($explained)( |$)" || true)"
[ -z "$unexplained" ] || { echo "$unexplained" >&2; fail "lintian warnings not explained in docs/packaging.md"; }
echo "lintian: $(grep -cE '^[EWIP]: ' /tmp/munin-async-lintian.txt) tag(s), all explained"
depends="$(dpkg-deb -f "$v1" Depends)"
check "Depends lacks glibc's version ($depends)" sh -c "echo '$depends' | grep -qE 'libc6 \(>= 2\.[0-9]+\)'"
check "Depends lacks libgcc-s1 ($depends)" sh -c "echo '$depends' | grep -q 'libgcc-s1'"

# Debian's package first, as on a host that runs the Perl programs today.
if [ "$(status munin-async)" != "install ok installed" ]; then
    debian_package
fi
mkdir -p /var/lib/munin-async/.ssh
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx2 master" > /var/lib/munin-async/.ssh/authorized_keys

echo "install over Debian's munin-async"
dpkg -i "$v1" >/dev/null
check "ours is not installed" [ "$(status munin-async-rs)" = "install ok installed" ]
check "Debian's munin-async is still installed" [ "$(status munin-async)" != "install ok installed" ]
check "munin-asyncd is not ours" sh -c '/usr/share/munin/munin-asyncd --version | grep -q "^munin-asyncd "'
for p in munin-async munin-asyncd; do
    check "/usr/share/munin/$p is not a symlink to /usr/lib/munin-async/$p" \
        [ "$(readlink -f /usr/share/munin/$p)" = "/usr/lib/munin-async/$p" ]
    check "/usr/lib/munin-async/$p is not stripped" sh -c "! readelf -S /usr/lib/munin-async/$p | grep -q '\.symtab'"
done
check "dpkg -V finds a changed file" sh -c '[ -z "$(dpkg -V munin-async-rs)" ]'
check "no md5sums" [ -s /var/lib/dpkg/info/munin-async-rs.md5sums ]
for f in changelog.Debian.gz NEWS.Debian.gz README.Debian copyright; do
    check "/usr/share/doc/munin-async-rs/$f is missing" [ -s "/usr/share/doc/munin-async-rs/$f" ]
done
# Every crate linked into the programs is named in the copyright file.
linked="$(cargo tree -e normal,no-proc-macro --prefix none --locked | grep -v '^munin-async ' \
    | sed 's/ v/-/; s/ .*//' | sort -u)"
check "cargo tree listed no crate" [ -n "$linked" ]
for crate in $linked; do
    check "the copyright file does not name $crate" \
        grep -q "^Files: rust-crates/$crate/" /usr/share/doc/munin-async-rs/copyright
done
check "munin-async is not ours" sh -c '/usr/share/munin/munin-async --version | grep -q "^munin-async "'
check "no munin-async user" sh -c "getent passwd munin-async >/dev/null"
check "the spool is not the user's" [ "$(stat -c %U:%a /var/lib/munin-async)" = "munin-async:750" ]
check "the init script is not ours" grep -q "For hosts without systemd" /etc/init.d/munin-async
for f in /usr/share/man/man8/munin-async.8.gz /usr/share/man/man8/munin-asyncd.8.gz \
    /usr/share/man/man5/munin-asyncd.conf.5.gz \
    /usr/share/bash-completion/completions/munin-asyncd \
    /usr/share/doc/munin-async-rs/examples/munin-asyncd.conf; do
    check "$f is missing" [ -s "$f" ]
done
check "the example configuration is refused" sh -c \
    'mkdir -p /tmp/munin-async-pkg && sed "s|/var/lib/munin-async|/tmp/munin-async-pkg|" \
     /usr/share/doc/munin-async-rs/examples/munin-asyncd.conf > /tmp/munin-async-pkg/conf && \
     timeout 3 /usr/share/munin/munin-asyncd --config /tmp/munin-async-pkg/conf --screen 2>/dev/null; \
     [ $? -eq 124 ]'
rm -rf /tmp/munin-async-pkg
check "the unit does not verify" systemd-analyze verify /lib/systemd/system/munin-async.service
check "the unit lost a setting" grep -q '^WatchdogSec=' /lib/systemd/system/munin-async.service
check "the unit lost a setting" grep -q '^ExecReload=/bin/kill -HUP' /lib/systemd/system/munin-async.service
check "the unit lost a setting" grep -q '^RestartPreventExitStatus=2$' /lib/systemd/system/munin-async.service
check "the unit does not read /etc/default" grep -q '^EnvironmentFile=-/etc/default/munin-async$' /lib/systemd/system/munin-async.service
check "no /etc/default/munin-async" grep -q '^DAEMON_ARGS=""$' /etc/default/munin-async
check "/etc/default/munin-async is not a conffile" grep -qx /etc/default/munin-async /var/lib/dpkg/info/munin-async-rs.conffiles
# No systemd runs here (no PID 1 of its own, no systemd-nspawn): the unit's hardening is
# judged offline, as `systemd-analyze security` rates it (the target is 3.0 at most).
exposure="$(systemd-analyze security --offline=true /lib/systemd/system/munin-async.service 2>/dev/null \
    | sed -n 's/.*Overall exposure level for munin-async.service: \([0-9.]*\).*/\1/p')"
echo "systemd-analyze security: exposure $exposure"
check "the unit is exposed over 3.0 ($exposure)" sh -c 'systemd-analyze security --offline=true \
    --threshold=30 /lib/systemd/system/munin-async.service >/dev/null 2>&1'

echo "the init script reads /etc/default/munin-async"
cp /etc/default/munin-async /tmp/munin-async.default
echo 'DAEMON_ARGS="--no-such-option"' >> /etc/default/munin-async
if /etc/init.d/munin-async start >/dev/null 2>&1; then
    /etc/init.d/munin-async stop >/dev/null 2>&1
    read_it=no
else
    read_it=yes
fi
mv /tmp/munin-async.default /etc/default/munin-async
check "the init script ignored DAEMON_ARGS" [ "$read_it" = yes ]

echo "the init script: start (waits for READY=1), reload, stop"
check "init script start failed" /etc/init.d/munin-async start
pid="$(cat /run/munin/munin-asyncd.pid)"
check "the daemon does not run as munin-async" [ "$(ps -o user= -p "$pid")" = "munin-async" ]
check "init script reload failed" /etc/init.d/munin-async reload
sleep 0.5
check "the daemon died on reload" kill -0 "$pid"
check "init script stop failed" /etc/init.d/munin-async stop
for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the daemon is still running after stop"
check "no SPOOL-META written" [ -s /var/lib/munin-async/SPOOL-META ]

echo "upgrade to a newer version of ours"
check "no spool lock" [ -f /var/lib/munin-async/munin-asyncd.lock ]
dpkg -i "$v2" >/dev/null
check "not upgraded" [ "$(dpkg-query -W -f='${Version}' munin-async-rs)" = "${version%-*}-2" ]
check "the spool went in the upgrade" [ -s /var/lib/munin-async/SPOOL-META ]

echo "purge"
dpkg --purge munin-async-rs >/dev/null
check "ours is still installed" [ -z "$(status munin-async-rs | grep ' installed')" ]
for f in /usr/share/munin/munin-asyncd /lib/systemd/system/munin-async.service \
    /etc/init.d/munin-async /etc/default/munin-async /var/lib/munin-async/SPOOL-META; do
    check "$f is left after purge" [ ! -e "$f" ]
done
check "the master's key went in the purge" [ -s /var/lib/munin-async/.ssh/authorized_keys ]
rm -rf /var/lib/munin-async/.ssh

echo "Debian's munin-async back"
debian_package
check "Debian's munin-async did not come back" [ "$(status munin-async)" = "install ok installed" ]
check "Perl's munin-asyncd is not back" sh -c 'head -1 /usr/share/munin/munin-asyncd | grep -q perl'
echo "package test: all checks passed"

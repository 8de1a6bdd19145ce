#!/usr/bin/env bash
# Idempotent set-up shared by `npm test`, `npm run demo` and `npm run bench`:
# installs what a fresh Debian 12 machine lacks, then the npm packages and the build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages, each checked by the command or file it provides.
need=()
command -v clang-19 >/dev/null || need+=(clang-19)
command -v llc-19 >/dev/null || need+=(llvm-19)
[ -f /usr/include/bpf/libbpf.h ] || need+=(libbpf-dev)
[ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 ] || ls /usr/lib/*/libbpf.so.1 >/dev/null 2>&1 || need+=(libbpf1)
command -v bpftool >/dev/null || need+=(bpftool)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v sockperf >/dev/null || need+=(sockperf)
command -v ping >/dev/null || need+=(iputils-ping)
command -v curl >/dev/null || need+=(curl)
command -v ethtool >/dev/null || need+=(ethtool)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v iptables-nft-restore >/dev/null && command -v iptables-legacy-restore >/dev/null || need+=(iptables)
[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
# Container runtimes the CNI plugin is tested with, and the reference CNI plugins.
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
# dockerd for the Docker driver's test, which starts its own daemon in a test namespace.
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need[*]}; run as root or install them with apt-get"
    exit 1
  fi
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No package's service starts on install (docker.io's would make docker0 and
  # iptables rules in the machine's own namespace); a policy of our own only.
  policy=''
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || { [ -z "$policy" ] || rm -f "$policy"; exit 1; }
  [ -z "$policy" ] || rm -f "$policy"
fi

# npm packages: install when absent or when the lock file changed since.
stamp=node_modules/.tendril-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

bash scripts/build.sh

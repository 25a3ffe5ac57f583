#!/bin/sh
# Prepares a Debian/Ubuntu host for Bulkhead: the system packages the tiers and tests use, the npm
# dependencies, and a build. Safe to run again: each step is skipped when already done.
set -eu
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."

# System packages: what enforces (bubblewrap, uidmap), what builds the exec shim and the attack
# helpers (gcc, libc6-dev, libseccomp-dev), what the tests drive (curl, git, socat, python3, iproute2,
# Xvfb and xclip for the session tier), and the micro-VM tier's VMM and guest-kernel build.
packages="bubblewrap uidmap gcc libc6-dev libseccomp-dev libseccomp2 curl git socat python3 iproute2 busybox-static hyperfine openssl util-linux procps xvfb xauth x11-utils xclip qemu-system-x86 linux-source-6.1 flex bison bc libelf-dev libssl-dev cpio make xz-utils ripgrep"
missing=""
for package in $packages; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bulkhead setup: missing system packages:$missing" >&2
    echo "fix: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
  fi
  echo "bulkhead setup: installing$missing" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bulkhead setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "bulkhead setup: building" >&2
npx turbo run build --output-logs=errors-only

#!/usr/bin/env bash
# Debian tools the test suite drives for real: apt-get and gpgv (apt's own verifier),
# dpkg-deb and dpkg-scanpackages, apt-ftparchive, lintian, zstd, xz, make. Installs only
# what is missing.
set -euo pipefail

declare -A package_for=(
  [apt-get]=apt
  [gpgv]=gpgv
  [dpkg-deb]=dpkg
  [dpkg-scanpackages]=dpkg-dev
  [apt-ftparchive]=apt-utils
  [lintian]=lintian
  [zstd]=zstd
  [xz]=xz-utils
  [make]=make
)
missing=()
for tool in "${!package_for[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_for[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-test-deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: installing ${missing[*]}" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

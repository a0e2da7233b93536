#!/usr/bin/env bash
# Prove that real apt accepts the published repository: serve it on 127.0.0.1, point an
# isolated apt (its own root, config, lists and dpkg database; the host's /etc/apt is
# not read) at it with signed-by= the published key, run `apt-get update` and install
# kiro-repo into that root.
#
#   scripts/apt-check.sh            # uses the settings debrepo would use here
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
debrepo="${DEBREPO:-$root/.venv/bin/debrepo}"
[ -x "$debrepo" ] || debrepo="$(command -v debrepo)"
command -v apt-get >/dev/null || { echo "apt-check: apt-get is not installed" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The published folder and keyring, as debrepo resolves them.
"$debrepo" serve --port 0 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 50); do
  grep -q "serving" "$work/serve.log" 2>/dev/null && break
  sleep 0.1
done
line="$(grep -m1 "serving" "$work/serve.log" || true)"
[ -n "$line" ] || { echo "apt-check: debrepo serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
repo_dir="$(echo "$line" | sed -E 's/^serving (.*) at http.*/\1/')"
url="$(echo "$line" | sed -E 's/.* at (http[^ ]*)\/ .*/\1/')"
keyring="$(ls "$repo_dir"/*-archive-keyring.gpg | head -n1)"

R="$work/root"
mkdir -p "$R"/etc/apt/{sources.list.d,preferences.d,apt.conf.d,trusted.gpg.d} "$R"/etc/apt-parts \
  "$R"/var/lib/apt/lists/partial "$R"/var/cache/apt/archives/partial \
  "$R"/var/lib/dpkg/{info,updates,triggers} "$R"/var/log
touch "$R"/var/lib/dpkg/status "$R"/var/lib/dpkg/available
echo "deb [signed-by=$keyring] $url stable main" >"$R/etc/apt/sources.list"
cat >"$work/apt.conf" <<CONF
Dir "$R/";
Dir::State::status "$R/var/lib/dpkg/status";
Dir::Etc "$R/etc/apt/";
Dir::Etc::Parts "$R/etc/apt-parts/";
Dir::Etc::trusted "$R/etc/apt/trusted.gpg";
Dir::Etc::trustedparts "$R/etc/apt/trusted.gpg.d/";
Dir::Cache "$R/var/cache/apt/";
Dir::Log "$R/var/log/";
Debug::NoLocking "true";
APT::Sandbox::User "$(id -un)";
Acquire::Languages "none";
DPkg::Options { "--root=$R"; "--log=$R/var/log/dpkg.log"; "--force-not-root"; };
CONF
export APT_CONFIG="$work/apt.conf"

echo "apt-check: apt-get update against $url" >&2
apt-get update 2>&1 | tee "$work/update.log"
if grep -qE '^(W|E):' "$work/update.log"; then
  echo "apt-check: FAILED: apt-get update reported warnings or errors" >&2
  exit 1
fi
echo "apt-check: apt-get install kiro-repo (into $R)" >&2
apt-get install -y kiro-repo 2>&1 | tail -n 3
test -f "$R/etc/apt/sources.list.d/kiro.sources"
test -f "$R/usr/share/keyrings/kiro-archive-keyring.gpg"
echo "apt-check: OK: apt accepted the signed repository and installed kiro-repo" >&2

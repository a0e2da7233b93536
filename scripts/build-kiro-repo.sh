#!/usr/bin/env bash
# Build kiro-repo, stage it, record its metadata and rebuild the repository
# (the seed's "Build Script Workflow"), then check the result.
#
#   scripts/build-kiro-repo.sh --version 1.0.0 [--repo-url https://repo.example.com]
#
# Extra arguments are passed to `debrepo build-repo-package`. Where things live comes
# from the usual settings (debrepo.yaml, DEBREPO_* variables); by default everything is
# under .debrepo/ in the current directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
debrepo="${DEBREPO:-}"
if [ -z "$debrepo" ]; then
  if [ -x "$root/.venv/bin/debrepo" ]; then
    debrepo="$root/.venv/bin/debrepo"
  else
    debrepo="$(command -v debrepo || true)"
  fi
fi
if [ -z "$debrepo" ]; then
  echo "build-kiro-repo: debrepo is not installed; run 'make venv' first" >&2
  exit 1
fi

version=""
for arg in "$@"; do
  case "$arg" in --version=*) version="${arg#--version=}" ;; esac
done
prev=""
for arg in "$@"; do
  [ "$prev" = "--version" ] && version="$arg"
  prev="$arg"
done
if [ -z "$version" ]; then
  echo "usage: $0 --version VERSION [--repo-url URL] [other build-repo-package options]" >&2
  exit 2
fi

export DEBREPO_CONFIG_DIR="${DEBREPO_CONFIG_DIR:-$root/config/packages}"
"$debrepo" build-repo-package "$@"
"$debrepo" verify

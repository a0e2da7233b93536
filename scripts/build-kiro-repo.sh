#!/usr/bin/env bash
# Build kiro-repo, stage it, record its metadata and publish the repository (the seed's
# "Build Script Workflow"), then check the result.
#
#   scripts/build-kiro-repo.sh --version 1.0.0 [--repo-url https://repo.example.com]
#   scripts/build-kiro-repo.sh --terraform-dir infra/terraform --version 1.0.0 --repo-url URL
#
# Where things live comes from the usual settings (debrepo.yaml, DEBREPO_* variables);
# by default everything is under .debrepo/ in the current directory. With
# --terraform-dir, the table, bucket and signing-key secret are read from that
# Terraform state's outputs, as in the seed: the package goes to the bucket's staging/
# prefix, its record to DynamoDB, and the publish runs under the DynamoDB lock.
# Other arguments are passed to `debrepo build-repo-package`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
script=build-kiro-repo
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
find_debrepo

args=()
version=""
terraform_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --terraform-dir) terraform_dir="$2"; shift 2 ;;
    --terraform-dir=*) terraform_dir="${1#--terraform-dir=}"; shift ;;
    --version) version="$2"; args+=("$1" "$2"); shift 2 ;;
    --version=*) version="${1#--version=}"; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$version" ]; then
  echo "usage: $0 [--terraform-dir DIR] --version VERSION [--repo-url URL] [build-repo-package options]" >&2
  exit 2
fi

if [ -n "$terraform_dir" ]; then
  settings_from_terraform "$terraform_dir"
fi

export DEBREPO_CONFIG_DIR="${DEBREPO_CONFIG_DIR:-$root/config/packages}"
"$debrepo" build-repo-package "${args[@]}"
verify_published

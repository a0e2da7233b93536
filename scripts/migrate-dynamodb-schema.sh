#!/usr/bin/env bash
# The seed's one-time migration from the old DynamoDB schema (one item per Kiro version,
# keyed by `version`) into debrepo's table, then a check of the published result.
#
#   scripts/migrate-dynamodb-schema.sh --env dev --terraform-dir infra/terraform --dry-run
#   scripts/migrate-dynamodb-schema.sh --env dev --terraform-dir infra/terraform \
#       [--backup-file backup-dev-YYYYmmdd-HHMMSS.jsonl]
#   scripts/migrate-dynamodb-schema.sh --restore --env dev --backup-file FILE
#
# The old table is kiro-debian-repo-manager-versions-<env> (the seed's name) unless
# --from-table names another. With --terraform-dir, the new table, the bucket and the
# signing-key secret come from that Terraform state's outputs; otherwise from the usual
# settings (DEBREPO_* variables, debrepo.yaml). A real run always writes a backup first
# (by default backup-<env>-<date>.jsonl in the current folder). --restore writes a
# backup back into the old table. Other arguments go to `debrepo migrate-table`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
script=migrate-dynamodb-schema
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"
find_debrepo

usage="usage: $0 --env ENV [--from-table TABLE] [--terraform-dir DIR] [--dry-run | --backup-file FILE] [--restore]"
args=()
env_name=""
old_table=""
terraform_dir=""
backup_file=""
dry_run=""
no_publish=""
restore=""
while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_name="$2"; shift 2 ;;
    --env=*) env_name="${1#--env=}"; shift ;;
    --from-table) old_table="$2"; shift 2 ;;
    --from-table=*) old_table="${1#--from-table=}"; shift ;;
    --terraform-dir) terraform_dir="$2"; shift 2 ;;
    --terraform-dir=*) terraform_dir="${1#--terraform-dir=}"; shift ;;
    --backup-file) backup_file="$2"; shift 2 ;;
    --backup-file=*) backup_file="${1#--backup-file=}"; shift ;;
    --dry-run) dry_run=1; args+=("$1"); shift ;;
    --no-publish) no_publish=1; args+=("$1"); shift ;;
    --restore) restore=1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$env_name" ] && [ -z "$old_table" ]; then
  echo "$usage" >&2
  exit 2
fi
old_table="${old_table:-kiro-debian-repo-manager-versions-$env_name}"

if [ -n "$restore" ]; then
  if [ -n "$dry_run" ]; then
    echo "migrate-dynamodb-schema: --restore has no --dry-run; it writes the backup into $old_table" >&2
    exit 2
  fi
  if [ -z "$backup_file" ]; then
    echo "migrate-dynamodb-schema: --restore needs --backup-file" >&2
    exit 2
  fi
  exec "$debrepo" restore-table --table "$old_table" --backup-file "$backup_file"
fi

if [ -n "$terraform_dir" ]; then
  settings_from_terraform "$terraform_dir"
fi

if [ -z "$dry_run" ] && [ -z "$backup_file" ]; then
  backup_file="backup-${env_name:-$old_table}-$(date +%Y%m%d-%H%M%S).jsonl"
fi
if [ -n "$backup_file" ]; then
  args+=(--backup-file "$backup_file")
fi

export DEBREPO_CONFIG_DIR="${DEBREPO_CONFIG_DIR:-$root/config/packages}"
"$debrepo" migrate-table --from-table "$old_table" "${args[@]}"
if [ -z "$dry_run" ] && [ -z "$no_publish" ]; then
  verify_published
fi

# Shared by the scripts next to it: `. "$here/common.sh"` after `set -euo pipefail`,
# with $script (the caller's name, for messages) and $root (the project folder) set.

# Sets $debrepo: $DEBREPO, else the project's virtualenv, else the one on PATH.
find_debrepo() {
  debrepo="${DEBREPO:-}"
  if [ -z "$debrepo" ]; then
    if [ -x "$root/.venv/bin/debrepo" ]; then
      debrepo="$root/.venv/bin/debrepo"
    else
      debrepo="$(command -v debrepo || true)"
    fi
  fi
  if [ -z "$debrepo" ]; then
    echo "$script: debrepo is not installed; run 'make venv' first" >&2
    exit 1
  fi
}

# Exports the table, bucket, signing-key secret, topic and region from the outputs of
# the Terraform state in folder $1, as the seed's scripts read them.
settings_from_terraform() {
  local dir="$1" value prefix public_url
  command -v terraform >/dev/null || { echo "$script: terraform is not installed" >&2; exit 1; }
  # Each assigned before it is exported: `export X="$(...)"` would hide a failing terraform.
  value="$(terraform -chdir="$dir" output -raw table)"
  export DEBREPO_STORE="dynamodb://$value"
  value="$(terraform -chdir="$dir" output -raw bucket)"
  export DEBREPO_STAGING="s3://$value"
  # Outputs added later: a state applied before them has none, which means the defaults
  # (the bucket root; the bucket's URL).
  prefix="$(terraform -chdir="$dir" output -raw s3_prefix 2>/dev/null)" || prefix=""
  export DEBREPO_REPO="s3://$value${prefix:+/$prefix}"
  public_url="$(terraform -chdir="$dir" output -raw public_url 2>/dev/null)" || public_url=""
  if [ -n "$public_url" ] && [ -z "${DEBREPO_PUBLIC_URL:-}" ]; then
    export DEBREPO_PUBLIC_URL="$public_url"
  fi
  value="$(terraform -chdir="$dir" output -raw signing_key_secret_arn)"
  export DEBREPO_KEY_SECRET_ID="$value"
  value="$(terraform -chdir="$dir" output -raw topic_arn)"
  export DEBREPO_SNS_TOPIC_ARN="$value"
  if [ -z "${AWS_REGION:-}" ]; then
    value="$(terraform -chdir="$dir" output -raw region)"
    export AWS_REGION="$value"
  fi
}

# Checks the published repository against the store.
verify_published() {
  case "${DEBREPO_REPO:-}" in
    s3://*) "$debrepo" verify --quick ;;  # full verification downloads every package
    *) "$debrepo" verify ;;
  esac
}

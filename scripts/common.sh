# shellcheck shell=bash disable=SC2154  # $script and $root are the caller's
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

# Prints Terraform output $2 of the state in folder $1. One the state lacks (or an
# empty one) ends the script with one line naming it, or with $3 = optional prints
# nothing. With no outputs at all (nothing applied yet), `terraform output -raw NAME`
# succeeds and prints a warning box on stdout: never a value, since these are one line.
terraform_output() {
  local dir="$1" name="$2" optional="${3:-}" value status=0 errors
  errors="$(mktemp)"
  value="$(terraform -chdir="$dir" output -no-color -raw "$name" 2>"$errors")" || status=$?
  if [ "$status" -eq 0 ] && [[ "$value" != *$'\n'* ]]; then
    cat "$errors" >&2
    rm -f "$errors"
    if [ -n "$value" ] || [ -n "$optional" ]; then
      printf '%s' "$value"
      return 0
    fi
  elif [ -n "$optional" ]; then
    rm -f "$errors"  # an output added later: a state applied before it has none
    return 0
  elif [ "$status" -ne 0 ] && ! grep -q "Output \"$name\" not found" "$errors"; then
    cat "$errors" >&2
    rm -f "$errors"
    echo "$script: could not read Terraform output $name in $dir" >&2
    exit 1
  fi
  rm -f "$errors"
  echo "$script: no Terraform output \"$name\" in $dir: run 'terraform -chdir=$dir apply' first" >&2
  exit 1
}

# Exports the table, bucket, signing-key secret, topic and region from the outputs of
# the Terraform state in folder $1, as the seed's scripts read them.
settings_from_terraform() {
  local dir="$1" value prefix public_url
  command -v terraform >/dev/null || { echo "$script: terraform is not installed" >&2; exit 1; }
  # Each assigned before it is exported: `export X="$(...)"` would hide a failure.
  value="$(terraform_output "$dir" table)"
  export DEBREPO_STORE="dynamodb://$value"
  value="$(terraform_output "$dir" bucket)"
  export DEBREPO_STAGING="s3://$value"
  # Outputs added later: a state applied before them has none, which means the defaults
  # (the bucket root; the bucket's URL).
  prefix="$(terraform_output "$dir" s3_prefix optional)"
  export DEBREPO_REPO="s3://$value${prefix:+/$prefix}"
  public_url="$(terraform_output "$dir" public_url optional)"
  if [ -n "$public_url" ] && [ -z "${DEBREPO_PUBLIC_URL:-}" ]; then
    export DEBREPO_PUBLIC_URL="$public_url"
  fi
  # As the Lambda writes: objects' ACLs, the keyring's name, the CDN to invalidate.
  value="$(terraform_output "$dir" acl_mode optional)"
  if [ -n "$value" ]; then export DEBREPO_S3_ACL_MODE="$value"; fi
  value="$(terraform_output "$dir" key_name optional)"
  if [ -n "$value" ]; then export DEBREPO_KEY_NAME="$value"; fi
  value="$(terraform_output "$dir" cloudfront_distribution_id optional)"
  if [ -n "$value" ]; then export DEBREPO_CLOUDFRONT_DISTRIBUTION_ID="$value"; fi
  value="$(terraform_output "$dir" signing_key_secret_arn)"
  export DEBREPO_KEY_SECRET_ID="$value"
  value="$(terraform_output "$dir" topic_arn)"
  export DEBREPO_SNS_TOPIC_ARN="$value"
  if [ -z "${AWS_REGION:-}" ]; then
    value="$(terraform_output "$dir" region)"
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

#!/usr/bin/env bash
# Build the Lambda deployment artifact: debrepo and its dependencies for the Lambda
# Python runtime (manylinux x86_64, CPython 3.11), plus config/packages and templates,
# zipped with the handler at debrepo.aws_lambda.handler.
#
#   scripts/build-lambda.sh [OUTPUT.zip]      (default build/debrepo-lambda.zip)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
output="${1:-$root/build/debrepo-lambda.zip}"
# A relative OUTPUT is taken from the caller's folder: the zip is made from another one.
case "$output" in
  /*) ;;
  *) output="$PWD/$output" ;;
esac
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
platform="${LAMBDA_PLATFORM:-manylinux2014_x86_64}"
runtime="${LAMBDA_PYTHON:-3.11}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/source" "$work/wheel" "$work/package" "$(dirname "$output")"

# The project itself is pure Python; its dependencies come as wheels for the runtime.
# Its wheel is built from a copy of the sources: built in place, setuptools would add
# whatever an earlier build left in build/lib (a module since removed or renamed).
cp -r "$root/pyproject.toml" "$root/README.md" "$root/src" "$work/source/"
find "$work/source" \( -name '__pycache__' -o -name '*.egg-info' \) -prune -exec rm -rf {} +
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" "$work/source"
"$python" -m pip install --quiet --no-compile --target "$work/package" \
  --platform "$platform" --implementation cp --python-version "$runtime" \
  --only-binary=:all: "$work"/wheel/debrepo-*.whl
cp -r "$root/config" "$root/templates" "$work/package/"
find "$work/package" -name '__pycache__' -prune -exec rm -rf {} +

rm -f "$output"
(cd "$work/package" && "$python" -m zipfile -c "$output" .)
echo "built $output ($(du -h "$output" | cut -f1))"

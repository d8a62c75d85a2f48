#!/usr/bin/env bash
# Downloads the wheels listed in scripts/wheels.txt into .cache/wheels (once each).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/wheels
mkdir -p "$dest"
grep -v '^\s*#' scripts/wheels.txt | grep -v '^\s*$' | while read -r spec; do
  name=${spec%%==*}
  version=${spec##*==}
  # Wheel file names use underscores for dashes.
  prefix="$(echo "$name" | tr '-' '_')-$version-"
  if ls "$dest"/"$prefix"*.whl >/dev/null 2>&1; then
    continue
  fi
  echo "fetching $spec"
  python3 -m pip download --quiet --no-deps "$spec" -d "$dest"
done

#!/usr/bin/env bash
# Installs the built wheel into a fresh venv (with numpy only) and checks that it imports and
# works there: what a user gets from `pip install mlops-*.whl`.
# Usage: scripts/wheel-smoke.sh WHEEL
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$1
venv=target/wheel-venv
python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet "$(grep '^numpy==' requirements-dev.txt)" "$wheel"
cd /tmp
"$OLDPWD/$venv/bin/python" - <<'PY'
import numpy as np
import mlops
image = np.zeros((32, 48, 3), dtype=np.uint8)
out, drawn = mlops.corrupt_array(image, kind="random_boxes", seed=1)
assert out.shape == image.shape and out.dtype == np.uint8 and (out != image).any()
try:
    mlops.Manifest.read("/nonexistent/manifest.jsonl")
except FileNotFoundError as e:
    assert isinstance(e, mlops.MlopsError)
else:
    raise SystemExit("no error for a missing manifest")
print(f"wheel OK: mlops {mlops.__version__} from {mlops.__file__}")
PY

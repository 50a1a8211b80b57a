# agml: `make reproduce` (the Fashion-MNIST main job) and `make test`.

CARGO    ?= cargo
AGML     := target/release/agml
RESULTS  ?= results
PAPER    ?= paper
JOBS     ?= 2
FMNIST   := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# libjpeg-turbo's headers: JPEGs are decoded by the library PIL uses (build.rs).
JPEGLIB  := /usr/include/jpeglib.h

# Backend of the build, the tests and the runs: flex (default, pure Rust) or tch (libtorch from
# the PyTorch wheel set up by `make setup-tch`). The environment torch-sys needs to build and
# the loader needs to run is set here, never by hand.
BACKEND  ?= flex
# TORCH=cuda (default): PyPI's torch==2.9.0 wheel with its CUDA libraries, in the reference venv.
# TORCH=cpu: a CPU-only libtorch folder made from the same wheel without the CUDA packages.
TORCH    ?= cuda
LIBTORCH_CPU := .libtorch-cpu
TORCH_CPU_VENV := .venv-torch-cpu
ORIGINAL_LD_LIBRARY_PATH := $(LD_LIBRARY_PATH)
ifeq ($(BACKEND),tch)
  CARGO_FEATURES := --features tch
  export AGML_BACKEND := tch
  export BURN_DEVICE := tch
  ifeq ($(TORCH),cpu)
    export LIBTORCH := $(abspath $(LIBTORCH_CPU))
    # The wheel's own lib folder: its RPATH ($ORIGIN/../../nvidia/...) finds libcupti there.
    export LD_LIBRARY_PATH = $(abspath $(wildcard $(TORCH_CPU_VENV)/lib/python3*/site-packages/torch/lib)):$(ORIGINAL_LD_LIBRARY_PATH)
  else
    export LIBTORCH_USE_PYTORCH := 1
    export PATH := $(abspath .venv)/bin:$(PATH)
    export LD_LIBRARY_PATH = $(abspath $(wildcard .venv/lib/python3*/site-packages/torch/lib)):$(ORIGINAL_LD_LIBRARY_PATH)
  endif
else ifneq ($(BACKEND),flex)
  $(error BACKEND=$(BACKEND): use flex or tch)
endif

# The Python reference environment (PyTorch, torchvision, pytorch-metric-learning) that
# writes the committed test fixtures and times the benchmarks' references; `make test` never
# needs it (BACKEND=tch does: its libtorch is the venv's torch wheel).
VENV     := .venv
REFPY    := $(VENV)/bin/python
# BN-Inception's architecture (the standard state dict's layout); never its weights, which it
# would download. six: an import it needs and does not declare.
PRETRAINEDMODELS := pretrainedmodels==0.7.4 six==1.17.0

.PHONY: all build build-deps data reproduce report figures paper smoke reference-store compare setup-tch test lint clean-smoke reference-env fixtures fixtures-check bench bench-env

all: build

build: build-deps
	$(CARGO) build --release $(CARGO_FEATURES)

# $(call debian,FILE,PACKAGE,TARGET,WHAT): install PACKAGE when FILE is missing and we are
# root; otherwise say which command would, and stop.
define debian
	@if [ ! -f $(1) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(2)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(4) is missing: run 'sudo apt-get install $(2)' (or 'make $(3)' as root)"; \
	    exit 2; \
	  fi; \
	fi
endef

# The one system library the build links (libjpeg-turbo, build.rs).
build-deps:
	$(call debian,$(JPEGLIB),libjpeg62-turbo-dev,build-deps,libjpeg-turbo's header jpeglib.h)

# Fashion-MNIST from Debian (dataset-fashion-mnist).
data:
	$(call debian,$(FMNIST),dataset-fashion-mnist,data,Fashion-MNIST)

# The main job: train every pending cell of the Fashion-MNIST matrix, then write its tables
# and figures.
reproduce: data build
	$(AGML) run experiments/fashion-mnist.toml --results $(RESULTS) --jobs $(JOBS) --rerun-stale
	$(AGML) report experiments/fashion-mnist.toml --results $(RESULTS) --out $(PAPER)
	@echo "table: $(PAPER)/tables/fashion-mnist.md, figures: $(PAPER)/figures/"

# The runs behind the committed tables (results/reference/fashion-mnist): each finished run's
# configuration, manifest, metrics and history, without checkpoints and embeddings (about
# 300 KB). Run after `make reproduce` whenever the committed tables are regenerated;
# tests/reference_store.rs checks that the two agree.
REFERENCE := results/reference/fashion-mnist
reference-store:
	rm -rf $(REFERENCE).new && mkdir -p $(REFERENCE).new/runs
	for run in $(RESULTS)/runs/*/; do \
	  [ -f $$run/manifest.json ] || continue; \
	  mkdir -p $(REFERENCE).new/runs/$$(basename $$run) && \
	  cp $$run/cell.toml $$run/manifest.json $$run/metrics.json $$run/history.csv $(REFERENCE).new/runs/$$(basename $$run)/ || exit 1; \
	done
	rm -rf $(REFERENCE) && mv $(REFERENCE).new $(REFERENCE)

# Your `make reproduce` against the committed reference store: the cells whose numbers moved
# and every table conclusion that does not hold in both (exit 1), docs/reproducibility.md.
compare: build
	$(AGML) compare $(RESULTS) $(REFERENCE) experiments/fashion-mnist.toml

# Tables, the Parquet runs index and figures from stored results only (no training): seconds.
figures: build
	$(AGML) report experiments/fashion-mnist.toml --results $(RESULTS) --out $(PAPER)

report: figures

# The LaTeX draft around the generated tables and figures.
paper: figures
	@if command -v latexmk >/dev/null 2>&1; then \
	  cd $(PAPER) && latexmk -pdf -interaction=nonstopmode -halt-on-error main.tex && \
	  echo "paper: $(PAPER)/main.pdf"; \
	else \
	  echo "latexmk is not installed: 'sudo apt-get install latexmk texlive-latex-recommended texlive-fonts-recommended', then 'make paper' again"; \
	  echo "(the tables and figures are in $(PAPER)/tables and $(PAPER)/figures)"; \
	fi

# Seconds: the two-cell smoke matrix into its own store.
smoke: data build
	$(AGML) run experiments/smoke.toml --results $(RESULTS)/smoke --jobs $(JOBS)
	$(AGML) report experiments/smoke.toml --results $(RESULTS)/smoke --out $(RESULTS)/smoke/paper

# Unit tests beside the code and end-to-end tests in tests/ (release: the same build as
# `make reproduce`). The fixtures are committed: flex needs cargo and the Debian packages only.
ifeq ($(BACKEND),tch)
test: build-deps data setup-tch
else
test: build-deps data
endif
	$(CARGO) test --release $(CARGO_FEATURES)

# libtorch for BACKEND=tch (see TORCH above); then `make test BACKEND=tch`,
# `make reproduce BACKEND=tch`.
ifeq ($(TORCH),cpu)
setup-tch: $(LIBTORCH_CPU)/lib/libtorch_cpu.so
else
setup-tch: reference-env
endif
	@echo "libtorch ready ($(TORCH)): build and run with BACKEND=tch"

# The wheel without its CUDA dependencies (1.75 GB instead of 6.7 GB), and a LIBTORCH folder of
# links to its CPU libraries (libtorch_cuda.so left out).
$(LIBTORCH_CPU)/lib/libtorch_cpu.so:
	python3 -m venv $(TORCH_CPU_VENV)
	$(TORCH_CPU_VENV)/bin/pip install -q --no-deps torch==2.9.0 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90
	torch_dir=$$(ls -d $(abspath $(TORCH_CPU_VENV))/lib/python3*/site-packages/torch); \
	mkdir -p $(LIBTORCH_CPU)/lib && ln -sfn $$torch_dir/include $(LIBTORCH_CPU)/include && \
	for lib in libtorch_cpu.so libc10.so libtorch.so libgomp.so.1 libshm.so; do \
	  ln -sfn $$torch_dir/lib/$$lib $(LIBTORCH_CPU)/lib/$$lib; \
	done

reference-env: $(REFPY)

$(REFPY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.9.0 torchvision==0.24.0 pytorch-metric-learning==2.9.0 numpy $(PRETRAINEDMODELS)

# Every committed fixture the reference writes (backbone outputs and manifests, the image
# pipeline, the authors' training step, losses, metrics, miniature datasets; 5.9 MB): run after
# changing a script or upgrading the reference, then commit. faiss-cpu: the metric fixtures'
# AccuracyCalculator.
fixtures: bench-env
	$(REFPY) tests/fixtures/regenerate.py

# Regenerates every committed fixture into a temporary folder and fails on any difference
# from the committed files (.ci/run): the fixtures stay what their scripts write.
fixtures-check: bench-env
	$(REFPY) tests/fixtures/regenerate.py --check

# Benchmarks against the references measured in the same run; writes bench/latest.json.
# Everything but the tch step and the flex-simd step (burn-flex's SIMD kernels, the `simd`
# feature) is a default flex build: a tch build loads libtorch at every start (seconds of the
# plan line, hundreds of MiB of the evaluation's RSS).
bench: bench-env
ifeq ($(BACKEND),tch)
	$(CARGO) build --release --features tch --bin train_step_bench
	cp target/release/train_step_bench target/release/train_step_bench-tch
else
	rm -f target/release/train_step_bench-tch
endif
	$(CARGO) build --release --features simd --bin train_step_bench
	cp target/release/train_step_bench target/release/train_step_bench-simd
	$(CARGO) build --release --bin agml --bin bench --bin train_step_bench
	target/release/bench --python $(REFPY) --out bench/latest.json

# faiss-cpu for the AccuracyCalculator reference of the evaluation benchmark.
bench-env: $(VENV)/.bench-env

$(VENV)/.bench-env: | $(REFPY)
	$(VENV)/bin/pip install -q faiss-cpu==1.15.1
	touch $@

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean-smoke:
	rm -rf $(RESULTS)/smoke

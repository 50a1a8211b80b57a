# agml: `make reproduce` (the Fashion-MNIST main job) and `make test`.

CARGO    ?= cargo
AGML     := target/release/agml
RESULTS  ?= results
PAPER    ?= paper
JOBS     ?= 2
FMNIST   := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The Python reference environment (PyTorch, torchvision, pytorch-metric-learning) that
# writes test fixtures; tests never call it at run time.
VENV     := .venv
REFPY    := $(VENV)/bin/python
BACKBONE_FIXTURES := tests/fixtures/backbones/googlenet.json

.PHONY: all build data reproduce report figures paper smoke test lint clean-smoke reference-env fixtures loss-fixtures dataset-fixtures bench bench-env

all: build

build:
	$(CARGO) build --release

# Fashion-MNIST from Debian (dataset-fashion-mnist); installed when missing and we are root.
data:
	@if [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing dataset-fashion-mnist"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else \
	    echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' (or 'make data' as root)"; \
	    exit 2; \
	  fi; \
	fi

# The main job: train every pending cell of the Fashion-MNIST matrix, then write its tables
# and figures.
reproduce: data build
	$(AGML) run experiments/fashion-mnist.toml --results $(RESULTS) --jobs $(JOBS) --rerun-stale
	$(AGML) report experiments/fashion-mnist.toml --results $(RESULTS) --out $(PAPER)
	@echo "table: $(PAPER)/tables/fashion-mnist.md, figures: $(PAPER)/figures/"

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

# Unit tests beside the code and end-to-end tests in tests/ (release: the same build as `make reproduce`).
test: data fixtures
	$(CARGO) test --release

reference-env: $(REFPY)

$(REFPY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.9.0 torchvision==0.24.0 pytorch-metric-learning==2.9.0 numpy

# Backbone weights and PyTorch outputs (about 180 MB): generated, never committed.
fixtures: $(BACKBONE_FIXTURES)

$(BACKBONE_FIXTURES): tests/fixtures/make_backbone_fixtures.py | $(REFPY)
	$(REFPY) tests/fixtures/make_backbone_fixtures.py

# The committed loss fixtures (run after changing the script or upgrading the reference).
loss-fixtures: | $(REFPY)
	$(REFPY) tests/fixtures/make_loss_fixtures.py

# The committed miniature CUB / Cars / SOP / In-Shop trees (run after changing the script).
dataset-fixtures: | $(REFPY)
	$(VENV)/bin/pip install -q scipy pillow
	$(REFPY) tests/fixtures/make_dataset_fixtures.py

# Benchmarks against the references measured in the same run; writes bench/latest.json.
bench: build bench-env
	$(CARGO) build --release --bin bench --bin train_step_bench
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

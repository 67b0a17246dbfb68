# Every target builds its own virtual environment; nothing is installed by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: demo test test-slow bench lint gpu-wheels clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the pinned CPU torch first: an unpinned one pulls several GB of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,train]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/puzzlegen build synthetic --tasks jigsaw3x3,rotation --limit 400 --out demo-out --overwrite
	$(BIN)/puzzlegen info demo-out

test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

# multi-process torchrun tests (DDP and FSDP2 on the CPU), about 1-2 minutes more
test-slow: $(STAMP)
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m tests.bench

lint: $(STAMP)
	$(BIN)/ruff check puzzlegen tests
	$(BIN)/ruff format --check puzzlegen tests

# what tests/gpu_bench.py needs on a GPU machine beyond its image, as Python 3.12 x86-64 wheels (README)
gpu-wheels: $(STAMP)
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl -r tests/gpu_carry.txt

clean:
	rm -rf $(VENV) demo-out .pytest_cache

# Every target builds its own virtual environment; nothing is installed by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: demo test test-slow bench lint clean

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

clean:
	rm -rf $(VENV) demo-out .pytest_cache

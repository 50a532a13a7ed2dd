# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cardiobench-installed
OUT    ?= results/demo
SCALE  ?= demo

.PHONY: venv demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

## Generate the phantom suite, harmonise it, embed, run every protocol, print the leaderboard,
## write the offline HTML report to $(OUT)/report/index.html and print the path to open.
demo: $(STAMP)
	$(BIN)/cardiobench demo --out $(OUT) --scale $(SCALE)

## The whole test suite (what CI runs); test-fast leaves out the tests marked slow.
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

## Speed benchmarks (scripts that print side-by-side ratios; not part of the tests).
bench: $(STAMP)
	$(BIN)/python benchmarks/extract_throughput.py
	$(BIN)/python benchmarks/evaluate_speed.py

clean:
	rm -rf $(VENV) results .pytest_cache

# `make demo`: build the environment, generate the synthetic dataset and run the whole pipeline.
# `make test`: build the same environment and run the test suite (what CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: demo test lint bench report-screenshot video-screenshot clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate requirements.txt requirements-nodeps.txt pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES)
	@echo "Open results/demo/eval/report.html; metrics in results/demo/eval/metrics.json"

test: $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --lint

bench: $(VENV)/.installed
	$(BIN)/python bench/flow.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/arnet.py

# A browser's view of the report, for a machine without a desktop (needs chromium): DATASET=<name> for another one.
DATASET ?= demo
report-screenshot:
	scripts/screenshot_report.sh results/$(DATASET)/eval/report.html results/$(DATASET)/eval/report.png

# The same for the page `mgenet score-video` writes: SCORES=<its --out folder> (default clip_scores).
SCORES ?= clip_scores
video-screenshot:
	scripts/screenshot_report.sh $(SCORES)/index.html $(SCORES)/index.png 1100 1100

clean:
	rm -rf results .snakemake

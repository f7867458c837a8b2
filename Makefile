# The two commands of the README. Both create .venv when it is missing,
# install the pinned requirements and register the venv's Jupyter kernel.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: test notebooks lint clean-venv site handout

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --prefix $(VENV) --name vmtlib --display-name "Python (vmtlib)" > /dev/null
	touch $(STAMP)

## make test: lint, unit tests, every notebook in its quick setting (nbval, lax), and the
## site built and checked in headless Chromium (skipped where Chromium is not installed)
test: site
	$(VENV)/bin/ruff check vmtlib tests benchmarks scripts notebooks
	VMTLIB_SITE_DIR=build/site VMTLIB_QUICK=1 $(PY) -m pytest

## make site: the course website from the committed notebooks into build/site/ (offline)
site: $(STAMP)
	$(PY) scripts/build_site.py --out build/site

## make handout: student copies (no outputs, no solutions) into build/handout/
handout: $(STAMP)
	$(PY) scripts/make_handout.py --out build/handout

## make notebooks: execute every notebook in its full setting, outputs written back
notebooks: $(STAMP)
	$(PY) scripts/run_notebooks.py

lint: $(STAMP)
	$(VENV)/bin/ruff check vmtlib tests benchmarks scripts notebooks

clean-venv:
	rm -rf $(VENV)

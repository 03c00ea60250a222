# ALS ePRO — the two commands a new user needs are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
DEMO_DB ?= var/demo/als-epro-demo.sqlite

.PHONY: demo test test-fast bench screenshots bundle sysdeps clean

sysdeps:
	@bash packaging/sysdeps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip 2>/dev/null
	$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
	$(BIN)/python -c "import flask, marshmallow, sqlite_utils, PySide6.QtWidgets, apscheduler, pytest" 
	@touch $(STAMP)

venv: $(STAMP)

test: sysdeps $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not browser"

demo: sysdeps $(STAMP)
	$(BIN)/python packaging/demo/run_demo.py --db $(DEMO_DB)

# make bench SCALE=38,1000 (or 38,1000,10000): only the scale rows, with the chart (issue 13 §4)
bench: sysdeps $(STAMP)
	$(BIN)/python -m bench $(if $(SCALE),--scale $(SCALE) --chart bench/scale.png)

screenshots: sysdeps $(STAMP)
	$(BIN)/python -m tests.tools.screenshots --out screenshots

bundle: sysdeps $(STAMP)
	$(BIN)/python -m pip install -q -e '.[package]' 2>&1 | grep -v 'is ignored' || true
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build packaging/desktop/als-epro.spec

clean:
	rm -rf build dist screenshots .pytest_cache

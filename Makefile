# The two commands of the README: `make run` (main job) and `make test` (test suite).
# Both install first; installing is idempotent and fast once done.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install run test

# Two steps because recbole 1.2.1's metadata pins ray<=2.6.3, which does not import on
# numpy 2; so RecBole goes in without its pins, and setup.cfg lists what it needs.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps recbole==1.2.1
	$(PIP) install -q -e ".[test,tune,fast]"

run: install
	$(PYTHON) run_recbole_pq.py

test: install
	$(PYTHON) -m pytest -q

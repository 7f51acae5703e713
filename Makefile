# hocvuso — the two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint check bench catalogs chat clean

$(PY):
	"$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: install if needed, upgrade the database, start the bot (console chat without a token)
run: $(STAMP)
	$(VENV)/bin/hocvuso db upgrade
	$(VENV)/bin/hocvuso serve

## chat: talk to the bot in this terminal
chat: $(STAMP)
	$(VENV)/bin/hocvuso db upgrade
	$(VENV)/bin/hocvuso chat

## test: install if needed, lint, check the content, run the whole suite
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hocvuso content check
	$(PY) -m pytest -q $(PYTEST_ARGS)

## test-fast: skip the slow tests (kill -9, failover, browser)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## lint: ruff's checks (the code keeps a compact layout of its own, so `ruff format` is not
## applied: it would spread 76 files over 1,400 more lines)
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## bench: every benchmark in bench/ (helpers: standin.py and _*.py); one JSON line each
bench: $(STAMP)
	@for b in bench/*.py; do case $$b in */standin.py|*/_*) continue;; esac; \
		$(PY) $$b || exit 1; done

## catalogs: extract messages and update the vi/en catalogs
catalogs: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k N_ -o bot/locales/messages.pot .
	$(VENV)/bin/pybabel update -i bot/locales/messages.pot -d bot/locales -D messages --no-fuzzy-matching

clean:
	rm -rf $(VENV) .pytest_cache

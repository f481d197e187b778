# One command runs the platform with demo data (`make demo`), one runs the tests (`make test`).
# Both create the virtualenv and install what they need on first use.
PYTHON ?= python3.11
VENV := .venv
PANOPTES_VENV := .venv-panoptes
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The real-browser tests drive Debian's Chromium and inject axe-core from the npm registry.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench migrate clean e2e-deps evaluate loop

$(VENV)/.runtime: requirements.txt requirements-web.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo_setup
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

node_modules/.package-lock.json: package.json package-lock.json
	command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# nginx runs in tests/hardening/test_slow_clients.py in front of a local gunicorn.
NGINX := /usr/sbin/nginx
$(NGINX):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nginx-light >/dev/null

e2e-deps: $(CHROMIUM) $(NGINX) node_modules/.package-lock.json

test: lint e2e-deps
	$(PY) -m pytest

bench: $(VENV)/.bench $(PANOPTES_VENV)/.installed
	$(PY) -m bench

# panoptes-aggregation pins an older numpy than the platform's: a virtualenv of its own, which
# bench/zooniverse.py runs as a separate command.
$(PANOPTES_VENV)/.installed: requirements-panoptes.txt
	test -x $(PANOPTES_VENV)/bin/python || $(PYTHON) -m venv $(PANOPTES_VENV)
	$(PANOPTES_VENV)/bin/python -m pip install --quiet -r requirements-panoptes.txt
	touch $@

# crowd-kit is only for comparisons (the SWAP benchmark, `make evaluate`), never for the platform.
$(VENV)/.bench: $(VENV)/.dev requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

# The whole aggregation pipeline against known truth, in a throwaway database: simulate
# 20,000 subjects and 1,000 volunteers, then score SWAP (batch, online, EM), majority vote and
# Dawid-Skene. EVAL_SUBJECTS and EVAL_VOLUNTEERS scale it.
EVAL_DIR := .evaluation
EVAL_SUBJECTS ?= 20000
EVAL_VOLUNTEERS ?= 1000
EVAL_ENV := DATABASE_URL=sqlite:///$(CURDIR)/$(EVAL_DIR)/db.sqlite3 \
	DJANGO_MEDIA_ROOT=$(CURDIR)/$(EVAL_DIR)/media CELERY_BROKER_URL=
evaluate: $(VENV)/.bench
	rm -rf $(EVAL_DIR) && mkdir -p $(EVAL_DIR)
	$(EVAL_ENV) $(PY) manage.py migrate --noinput >/dev/null
	$(EVAL_ENV) $(PY) manage.py create_workflow evaluation
	$(EVAL_ENV) $(PY) manage.py simulate subjects --workflow evaluation --n $(EVAL_SUBJECTS) --seed 1
	$(EVAL_ENV) $(PY) manage.py simulate volunteers --workflow evaluation --n $(EVAL_VOLUNTEERS) --seed 1 --bulk
	$(EVAL_ENV) $(PY) manage.py aggregate --workflow evaluation --reference-sets sim-experts --mode batch --compare
	$(EVAL_ENV) $(PY) manage.py aggregate --workflow evaluation --reference-sets sim-experts --mode online
	$(EVAL_ENV) $(PY) manage.py aggregate --workflow evaluation --reference-sets sim-experts --mode em

# The machine-learning loop on simulated data, in a throwaway database. A first workflow's crowd
# labels, with fakes of known truth, train the base model v0.1; a second workflow, with other
# subjects and volunteers, gives a stable label set that asks to fine-tune v0.1 (the export
# queues the job: v0.2); both versions are then drawn on v0.2's test split, which neither has
# seen. At the end, sim to real: both versions score 300 real ZTF triplets (ROC AUC and
# Spearman against ZTF's drb), and the realism report compares simulated with real stamps
# (plots in .loop/realism). LOOP_SUBJECTS, LOOP_VOLUNTEERS and LOOP_EPOCHS scale it.
LOOP_DIR := .loop
LOOP_SUBJECTS ?= 4000
LOOP_INJECTIONS ?= 3000
LOOP_VOLUNTEERS ?= 300
LOOP_EPOCHS ?= 20
LOOP_ENV := DATABASE_URL=sqlite:///$(CURDIR)/$(LOOP_DIR)/db.sqlite3 \
	DJANGO_MEDIA_ROOT=$(CURDIR)/$(LOOP_DIR)/media CELERY_BROKER_URL=
loop: $(VENV)/.runtime
	rm -rf $(LOOP_DIR) && mkdir -p $(LOOP_DIR)
	$(LOOP_ENV) $(PY) manage.py migrate --noinput >/dev/null
	$(LOOP_ENV) $(PY) manage.py create_workflow first
	$(LOOP_ENV) $(PY) manage.py simulate subjects --workflow first --n $(LOOP_SUBJECTS) --seed 1
	$(LOOP_ENV) $(PY) manage.py simulate injections --workflow first --n $(LOOP_INJECTIONS) --seed 2
	$(LOOP_ENV) $(PY) manage.py simulate volunteers --workflow first --n $(LOOP_VOLUNTEERS) --seed 1
	$(LOOP_ENV) $(PY) manage.py aggregate --workflow first --reference-sets sim-experts --mode batch
	$(LOOP_ENV) $(PY) manage.py export_labels --run 1 --scenario unstable --seed 1 \
		--mix-injections injections:0.4
	$(LOOP_ENV) $(PY) manage.py train --label-set 1 --name v0.1 --epochs $(LOOP_EPOCHS)
	$(LOOP_ENV) $(PY) manage.py create_workflow second
	$(LOOP_ENV) $(PY) manage.py simulate subjects --workflow second --n $(LOOP_SUBJECTS) --seed 3
	$(LOOP_ENV) $(PY) manage.py simulate volunteers --workflow second --n $(LOOP_VOLUNTEERS) --seed 3
	$(LOOP_ENV) $(PY) manage.py aggregate --workflow second --reference-sets sim-experts --mode batch
	$(LOOP_ENV) $(PY) manage.py export_labels --run 2 --scenario stable --seed 2 \
		--fine-tune-from v0.1
	$(LOOP_ENV) $(PY) manage.py model_figures --model v0.2 --compare v0.1 --out $(LOOP_DIR)/figures
	$(LOOP_ENV) $(PY) manage.py realcheck --model v0.1
	$(LOOP_ENV) $(PY) manage.py realcheck --model v0.2
	$(PY) -m simulation.realism --n 2000 --seed 1 --out $(LOOP_DIR)/realism

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles node_modules artifacts $(EVAL_DIR) $(LOOP_DIR)

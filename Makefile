# Entry points for developers and CI; `make test` is the README's and .ci/run's test command.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint kafka-up kafka-down run replay-example report-example bench bench-pipeline

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Tests that need Kafka start a local broker (first run: Maven resolves its jars, ~1 min);
# to reuse a running broker: KAFKA_BOOTSTRAP_SERVERS=$(.venv/bin/slaclock kafka up) make test
test: venv
	$(BIN)/pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

kafka-up: venv
	@$(BIN)/slaclock kafka up

kafka-down: venv
	@$(BIN)/slaclock kafka down

# The live demo; DURATION= (empty) runs until Ctrl-C.
DURATION ?= 120
run: venv
	$(BIN)/slaclock demo $(if $(DURATION),--duration $(DURATION),)

replay-example: venv
	$(BIN)/slaclock replay --policy examples/policy.yaml --events examples/events.jsonl --dlq /dev/stderr

# The example report: replay examples/, then report its latest month (build/example-report.*).
report-example: venv
	@mkdir -p build
	$(BIN)/slaclock replay --policy examples/policy.yaml --events examples/events.jsonl --out build/example-outputs.jsonl --dlq build/example-rejected.jsonl
	$(BIN)/slaclock report --outputs build/example-outputs.jsonl --policy examples/policy.yaml --out build/example-report

bench: venv
	$(BIN)/python benchmarks/replay_bench.py

bench-pipeline: venv
	$(BIN)/python benchmarks/pipeline_bench.py

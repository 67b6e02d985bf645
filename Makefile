# The two commands of the README's Quick start. Each sets up what it needs on a fresh
# Debian/Ubuntu machine (a virtual environment in .venv; for the tests also Xvfb, the
# virtual screen napari's GUI tests draw on) and then does its job.
#
# constraints.txt pins the CPU build of torch that these machines carry, so that no
# install step pulls the multi-GB CUDA wheels; on a machine with a GPU, install with
# plain `pip install chipqa` instead.

PY ?= python3
VENV ?= .venv
PIP = $(VENV)/bin/pip install -q -c constraints.txt
XVFB_PACKAGES = xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1

.PHONY: demo test venv test-deps system-deps

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

venv: $(VENV)/bin/python
	$(PIP) -e ".[napari]"  # the demo opens napari where there is a display

test-deps: $(VENV)/bin/python
	$(PIP) -e ".[test]"

system-deps:
	@if ! command -v Xvfb >/dev/null 2>&1; then \
		echo "installing Xvfb for the GUI tests (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(XVFB_PACKAGES) >/dev/null; \
	fi

demo: venv
	$(VENV)/bin/chipqa demo

test: system-deps test-deps
	$(VENV)/bin/python -m pytest

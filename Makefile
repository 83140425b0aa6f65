# The two commands: `make book` (regenerate the whole report) and `make test`.
# Both create the virtual environment on first use and install pinned dependencies.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= default
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
export PYTHONWARNINGS ?= ignore::DeprecationWarning
export TOKENIZERS_PARALLELISM := false

.PHONY: book test notebook speedup gpu gpu-rehearse screenshots benchmark clean venv help

help:
	@echo "make book [PROFILE=smoke|default|paper]   execute every notebook, render the HTML book"
	@echo "make test                                 the offline test suite (also runs every notebook in the smoke profile)"
	@echo "make notebook NB=02_unstructured          execute one chapter (PROFILE as above)"
	@echo "make speedup                              measure 2:4 speed-ups on an NVIDIA GPU"
	@echo "make gpu                                  every GPU measurement (2:4, pruning time at 7B, 30B offload), <= 9 min"
	@echo "make gpu-rehearse                         the same on the CPU with tiny shapes (checks every code path)"
	@echo "make benchmark                            wall time / memory of the pruning methods, side by side (SmolLM2, Qwen 0.5B)"
	@echo "make benchmark CONTENDED=1                the same, then each method beside one busy process: the slowdown"
	@echo "make screenshots                          screenshot the built book's pages with headless Chromium"

venv: $(VENV)/.installed

# The stamp depends on the pin files: change a pin and the next make reinstalls.
$(VENV)/.installed: requirements.txt requirements-data.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) (first time: about 2-3 minutes)"
	@$(PIP) -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c "import torch, transformers, lm_eval, papermill, jupyter_book" || { echo "dependency install failed"; exit 1; }
	@$(PIP) --no-deps -r requirements-data.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PIP) --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

book: venv
	$(PY) -m wanda_core.report.bookbuild all --profile $(PROFILE)
	@echo "open _build/html/index.html"

notebook: venv
	@test -n "$(NB)" || { echo "usage: make notebook NB=02_unstructured [PROFILE=default]"; exit 2; }
	$(PY) -m wanda_core.report.bookbuild run $(NB) --profile $(PROFILE)

test: venv
	$(PY) -m pytest

speedup: venv
	bash benchmarks/speedup_gpu.sh

# no venv: the GPU machine has torch/transformers/pandas but no PyPI; the script sets PYTHONPATH
gpu:
	bash benchmarks/gpu_all.sh

gpu-rehearse: venv
	GPU_REHEARSAL=1 PYTHON=$(PY) bash benchmarks/gpu_all.sh

# the embedded default, then the largest ladder rung that fits a few minutes on 2 cores
BENCH_MODELS ?= smollm2-135m qwen2.5-coder-0.5b
# CONTENDED=1: each method also runs beside one busy process pinned to one CPU (idle vs contended seconds)
benchmark: venv
	@for m in $(BENCH_MODELS); do $(PY) benchmarks/prune_speed.py --model $$m $(if $(CONTENDED),--contended) || exit 1; done

screenshots: venv
	$(PY) benchmarks/screenshots.py

clean:
	rm -rf _build book/_generated

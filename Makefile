# Top-level driver. `make test` and `make build` install dependencies when missing.
#   make test               build/ : every ctest label (llama.cpp from npm for the `llama` one), then the fuzz targets (build-fuzz/, ~1 min each)
#   make test SANITIZE=1    build-asan/ : ASan + UBSan, the `unit` and `cli` labels
#   make fuzz [FUZZ_SECONDS=600]   build-fuzz/ : long libFuzzer runs, corpora kept between runs
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release
PREFIX ?= /usr/local
CCACHE := $(shell command -v ccache 2>/dev/null)
LAUNCHER := $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# The fuzz build: clang++ with -fsanitize=fuzzer,address,undefined (tests/fuzz/).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TEST_SECONDS ?= 60
FUZZ_JOBS ?= 2
FUZZ_MAX_LEN ?=

ifeq ($(SANITIZE),1)
BUILD := build-asan
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_SANITIZE=ON -DMOE_BUILD_BENCH=OFF $(LAUNCHER)
BUILD_TARGETS := --target moe test_unit test_cli
CTEST_ARGS := -L '^(unit|cli)$$'
# detect_leaks: LeakSanitizer on; third-party frames only in the suppressions file.
export ASAN_OPTIONS := detect_leaks=1:halt_on_error=1
export LSAN_OPTIONS := suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1
endif

.PHONY: all deps configure build install test demo bench clean fuzz-configure fuzz-build fuzz fuzz-test llama-cpp

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS) $(BUILD_TARGETS)

# The moe binary into $(PREFIX)/bin (default /usr/local/bin, on PATH).
install: configure
	cmake --build $(BUILD) -j $(JOBS) --target moe
	cmake --install $(BUILD) --prefix $(PREFIX)

ifeq ($(SANITIZE),1)
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
else
test: build llama-cpp
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) fuzz-test
endif

# llama.cpp for the `llama` tests (our GGUF exports run in it): node-llama-cpp 3.21.1
# from npm, prebuilt CPU binaries, into $(BUILD)/llama-node.
llama-cpp:
	@bash scripts/install-llama-cpp.sh $(BUILD)/llama-node

$(FUZZ_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(FUZZ_BUILD) -DMOE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo $(LAUNCHER)

fuzz-configure: deps $(FUZZ_BUILD)/CMakeCache.txt

fuzz-build: fuzz-configure
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Each target for FUZZ_TEST_SECONDS (two at a time): part of `make test`.
fuzz-test: fuzz-build
	cd $(FUZZ_BUILD) && FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) ctest --output-on-failure -L fuzz -j $(FUZZ_JOBS) \
	  --timeout $$(( $(FUZZ_TEST_SECONDS) + 300 ))

# Long runs: each target for FUZZ_SECONDS; new inputs accumulate in $(FUZZ_BUILD)/tests/fuzz/corpus/.
fuzz: fuzz-build
	cd $(FUZZ_BUILD) && FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MAX_LEN=$(FUZZ_MAX_LEN) ctest --output-on-failure -L fuzz -j $(FUZZ_JOBS) \
	  --timeout $$(( $(FUZZ_SECONDS) + 300 ))

demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target moe
	bash scripts/demo.sh

bench: build
	$(BUILD)/moe bench gemm --json
	$(BUILD)/moe bench train --json
	$(BUILD)/moe bench train --json --experts 8 --batch 16

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)

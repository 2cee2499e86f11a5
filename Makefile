# Top-level driver. `make test` and `make build` install dependencies when missing.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release
PREFIX ?= /usr/local

.PHONY: all deps configure build install test demo bench clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The moe binary into $(PREFIX)/bin (default /usr/local/bin, on PATH).
install: configure
	cmake --build $(BUILD) -j $(JOBS) --target moe
	cmake --install $(BUILD) --prefix $(PREFIX)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target moe
	bash scripts/demo.sh

bench: build
	$(BUILD)/moe bench gemm --json
	$(BUILD)/moe bench train --json
	$(BUILD)/moe bench train --json --experts 8 --batch 16

clean:
	rm -rf $(BUILD)

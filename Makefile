# nexus: the two set-up commands are `make run` and `make test`; everything else is a helper.
# The real build is CMake; this file only picks build directories and options.

JOBS ?= $(shell nproc)
CONFIG ?= examples/quickstart.yaml
FUZZ_SECONDS ?= 20
LONG_FUZZ_SECONDS ?= 600
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1

.PHONY: all deps build run test unit integration conformance fuzz-smoke fuzz bench format clean

all: build

deps:
	@bash scripts/deps

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNX_TESTS=OFF >/dev/null
	cmake --build build -j$(JOBS)

# nexus with the demo backends and the four example pipelines (see README.md); run it from
# here, the config names build/examples/demo_backends. CONFIG=FILE runs another config.
run: build
	./build/nexus --config $(CONFIG)

# Sanitizer build: unit tests, integration tests against the real binary, short fuzz runs.
build-asan/.configured:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNX_SANITIZE=ON >/dev/null
	touch $@

test: deps build-asan/.configured
	cmake --build build-asan -j$(JOBS)
	$(MAKE) --no-print-directory unit integration conformance fuzz-smoke
	@echo "make test: all suites passed"

unit:
	cd build-asan && ctest --output-on-failure -j$(JOBS)

# The 10k-connection test needs descriptors: raise the soft limit to the hard one.
integration:
	ulimit -n "$$(ulimit -Hn)"; NEXUS_BIN=$(CURDIR)/build-asan/nexus \
		NXLOAD_BIN=$(CURDIR)/build-asan/nxload node --experimental-websocket --test \
		--test-concurrency=1 tests/integration/

# The official MCP conformance suite against examples/conformance_server: the stable release
# (all 32 server scenarios, pending ones included) directly and through nexus as a gateway in
# front of the same fixtures on stdio, over Streamable HTTP and over legacy HTTP+SSE, then the
# 0.2.0 prerelease at its default wires and at 2026-07-28, each with the baseline of scenarios known to fail (see the file).
CONFORMANCE_SERVER = $(CURDIR)/build-asan/examples/conformance_server
conformance:
	bash scripts/conformance $(CONFORMANCE_SERVER)
	bash scripts/conformance --stdio-gateway $(CONFORMANCE_SERVER)
	bash scripts/conformance --http-gateway $(CONFORMANCE_SERVER)
	bash scripts/conformance --legacy-gateway $(CONFORMANCE_SERVER)
	bash scripts/conformance --next --expected-failures tests/conformance/expected-next.yml \
		$(CONFORMANCE_SERVER)
	bash scripts/conformance --next --expected-failures tests/conformance/expected-next.yml \
		$(CONFORMANCE_SERVER) --spec-version 2026-07-28
	bash scripts/conformance-client $(CURDIR)/build-asan/nexus

build-fuzz/.configured:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DNX_FUZZ=ON >/dev/null
	touch $@

fuzz-smoke: build-fuzz/.configured
	cmake --build build-fuzz -j$(JOBS)
	bash scripts/fuzz $(FUZZ_SECONDS)

fuzz: deps build-fuzz/.configured
	cmake --build build-fuzz -j$(JOBS)
	bash scripts/fuzz $(LONG_FUZZ_SECONDS)

bench: build
	bash bench/plaintext.sh
	bash bench/mcp.sh
	bash bench/gateway.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz

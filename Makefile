# SPDX-License-Identifier: Apache-2.0
# pwatch — see README.md. `make help` lists the targets.

GO       ?= $(shell command -v go || echo /usr/local/go/bin/go)
# Tests build binaries with the go command too: keep it on PATH.
export PATH := $(dir $(GO)):$(PATH)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/pwatch/pwatch/internal/version.Version=$(VERSION)
BIN      := bin
GOTEST   := $(GO) test -race -count=1 -timeout 40m

.PHONY: help build test generate generate-check bench vet lint fmt fuzz demo deb clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# Static, as the package ships it (scripts/build-deb.sh). urfave_cli_no_docs
# leaves out urfave/cli's markdown and man renderers, which pwatch never
# calls (their markdown library costs pcheck 0.3 MB of resident memory).
GOTAGS   := urfave_cli_no_docs
build: ## build pcheck, padmin and the demo server into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(GOTAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: ## run every test (as root for the privileged ones)
	$(GOTEST) ./...

generate: ## rebuild the BPF objects with clang (-O2 -g -Wall -Werror)
	$(GO) generate ./pkg/exitwatch/ ./pkg/limits/

generate-check: generate ## regenerate and fail if the committed objects differ
	git diff --exit-code -- pkg/exitwatch pkg/limits bpf
	@test -z "$$(git status --porcelain -- pkg/exitwatch pkg/limits bpf)" || { git status --porcelain -- pkg/exitwatch pkg/limits bpf; exit 1; }

bench: ## run the benchmarks and print their table
	mkdir -p $(BIN) && $(GO) test -run '^$$' -bench . -benchtime 1x ./... | tee $(BIN)/bench.txt | scripts/bench-table.sh

vet: ## go vet
	$(GO) vet ./...

lint: vet ## go vet and gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# package:fuzzer, each run for FUZZTIME by make fuzz
FUZZERS = ./pkg/pfile/:FuzzParse ./pkg/exitwatch/:FuzzOOMRecord ./internal/quote/:FuzzString ./internal/promtext/:FuzzWrite

fuzz: ## run each fuzzer (pfile parser, kernel-log parser, quoting) for FUZZTIME each (default 2m), and the stall rule's property test for RAPIDCHECKS schedules
	@set -e; for f in $(FUZZERS); do \
		echo "fuzz $${f#*:} in $${f%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $${FUZZTIME:-2m} $${f%%:*}; \
	done
	$(GO) test -run '^TestRunnerMatchesModel$$' -rapid.checks=$${RAPIDCHECKS:-200000} ./pkg/probe/

demo: build ## start a demo web server and pcheck watching it (needs root)
	scripts/demo.sh

deb: ## build the Debian package bin/pwatch_VERSION_amd64.deb (nfpm, pinned in go.mod)
	GO=$(GO) scripts/build-deb.sh

clean: ## remove bin/
	rm -rf $(BIN)

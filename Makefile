# itemq — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
MODULE := github.com/itemq/itemq
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# grpcnotrace keeps golang.org/x/net/trace (and its html templates, which stop
# the linker from dropping unused methods) out of binaries that link gRPC.
GOTAGS ?= grpcnotrace
LDFLAGS := -s -w -X $(MODULE)/internal/version.Version=$(VERSION) -X $(MODULE)/internal/version.Revision=$(REVISION)
CACHE ?= $(HOME)/.cache/itemq
TESTENV := $(CACHE)/test.env
TEST_TIMEOUT ?= 40m

# binary name : package directory
CMDS := itemq-dir:ambassadors/dir itemq-bucket:ambassadors/bucket itemq-kafka:ambassadors/kafka \
        itemq-script:executors/script itemq-thumbnail:executors/thumbnail itemq-blob:executors/blob itemq-manager:manager

.PHONY: help build test test-deps vet bench fmt clean demo images

help: ## show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every binary into bin/ (static, CGO_ENABLED=0, version stamped)
	@mkdir -p bin
	@for c in $(CMDS); do name=$${c%%:*}; dir=$${c#*:}; \
	  if [ -d "$$dir" ]; then \
	    echo "go build -o bin/$$name ./$$dir"; \
	    CGO_ENABLED=0 $(GO) build -trimpath -tags "$(GOTAGS)" -ldflags "$(LDFLAGS)" -o bin/$$name ./$$dir || exit 1; \
	  fi; done

images: ## build the container images (docker if an engine answers, else podman; BASES=upstream for the distroless/Debian bases)
	VERSION="$(VERSION)" REVISION="$(REVISION)" LDFLAGS="$(LDFLAGS)" CMDS="$(CMDS)" ./hack/images.sh

test-deps: ## install what the tests need (apt packages, real servers; cached under ~/.cache/itemq)
	@mkdir -p $(CACHE)
	./hack/test-deps.sh > $(TESTENV).tmp && mv $(TESTENV).tmp $(TESTENV)
	@cat $(TESTENV)

test: test-deps build ## everything: install test deps, go vet, go test -race ./... (integration tests included)
	set -a; source $(TESTENV); set +a; \
	  $(GO) vet ./... && \
	  $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

vet: ## go vet ./...
	$(GO) vet ./...

bench: test-deps ## run the benchmarks (figures are recorded in docs/benchmarks.md)
	set -a; source $(TESTENV); set +a; \
	  $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

demo: build ## the video thumbnail generator on this machine (WATCH=1 keeps it running)
	@command -v ffmpeg >/dev/null || ./hack/deps/10-apt.sh >/dev/null
	@$(GO) build -o bin/.demo ./hack/demo
	bin/.demo -dir demo -bin bin $(if $(WATCH),-watch)

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove bin/ and demo output
	rm -rf bin demo/out

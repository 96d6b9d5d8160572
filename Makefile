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
CMDS := itemq-dir:ambassadors/dir itemq-bucket:ambassadors/bucket itemq-kafka:ambassadors/kafka itemq-redis:ambassadors/redis \
        itemq-script:executors/script itemq-thumbnail:executors/thumbnail itemq:cmd/itemq itemq-manager:manager

.PHONY: help build test test-deps vet cross bench fmt clean demo images fuzz redis-e2e screenshots chaos sim

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

test: test-deps build cross ## everything: install test deps, go vet, the cross-platform check, go test -race ./... (integration tests included)
	set -a; source $(TESTENV); set +a; \
	  $(GO) vet ./... && \
	  $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

vet: ## go vet ./...
	$(GO) vet ./...

cross: ## the module builds for macOS and itemapi vets for Windows (Linux-only code lives in *_linux.go files; docs/development.md)
	GOOS=darwin $(GO) build ./...
	GOOS=windows $(GO) vet ./itemapi/...

bench: test-deps ## run the benchmarks (figures are recorded in docs/benchmarks.md)
	set -a; source $(TESTENV); set +a; \
	  $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

redis-e2e: test-deps ## the Redis ambassador's full run: 10,000 stream entries through itemq-redis, the manager and itemq-script, each killed twice
	set -a; source $(TESTENV); set +a; \
	  ITEMQ_REDIS_E2E_ENTRIES=10000 ITEMQ_REDIS_E2E_KILLS=2 $(GO) test -count=1 -v -timeout 60m -run TestThroughManager ./ambassadors/redis

chaos: test-deps ## the chaos runs in full: 2,000 items each with the dir and the Kafka source and on the Kubernetes runner, with random SIGKILLs, and 2,000 under a storm of cancels and retries (make test runs 200, 200, 60 and 150)
	set -a; source $(TESTENV); set +a; \
	  ITEMQ_CHAOS_ITEMS=2000 $(GO) test -count=1 -v -timeout 90m -run 'TestChaos|TestIntegrationChaos|TestLifecycleChaos' ./manager ./ambassadors/kafka ./internal/runner/kube ./internal/manager

sim: ## the scaling simulator in full: every workload through itemq's scaler and the queue-length controllers; writes docs/scaling/ (results.md and plots)
	$(GO) run ./hack/sim -size 1 -seeds 3 -out docs/scaling
	ITEMQ_SIM_FULL=1 $(GO) test -count=1 -run 'TestLeanPoolBound' ./internal/sim/

demo: build ## the video thumbnail generator on this machine (WATCH=1 keeps it running)
	@command -v ffmpeg >/dev/null || ./hack/deps/10-apt.sh >/dev/null
	@$(GO) build -o bin/.demo ./hack/demo
	bin/.demo -dir demo -bin bin $(if $(WATCH),-watch)

screenshots: test-deps ## the dashboard's browser test in headless chromium; its screenshots go to _artifacts/dashboard/ and the README's to docs/images/
	set -a; source $(TESTENV); set +a; \
	  ITEMQ_ARTIFACTS=$(CURDIR)/_artifacts $(GO) test -count=1 -run TestDashboardInChromium ./internal/manager/dashboard/
	cp _artifacts/dashboard/overview.png docs/images/dashboard-overview.png
	cp _artifacts/dashboard/job.png docs/images/dashboard-job.png

# Fuzz targets, package:FuzzName; append yours. `make test` runs their seeds
# and testdata/fuzz corpora; `make fuzz` fuzzes each for FUZZTIME (figures in
# docs/reliability.md).
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./itemapi:FuzzValidateName \
	./itemapi:FuzzItemKey \
	./itemapi:FuzzObjectURL \
	./itemapi:FuzzClientDecode \
	./itemapi:FuzzWatchStream \
	./internal/source:FuzzContinueToken \
	./internal/source/dirsource:FuzzCheckName \
	./internal/ambassador:FuzzHandler \
	./internal/executor:FuzzReadItemFile \
	./internal/executor:FuzzSafeFileName \
	./internal/manager/managercmd:FuzzParseSteps \
	./internal/manager/managercmd:FuzzReadEnvFile \
	./internal/manager/statusapi:FuzzStatusAPI \
	./internal/manager/dashboard:FuzzDashboard

fuzz: ## fuzz every target of FUZZ_TARGETS for FUZZTIME each (one at a time, -parallel=1)
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t#*:}; \
	  echo "go test -run '^$$' -fuzz '^$$name$$' -fuzztime $(FUZZTIME) $$pkg"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg || exit 1; \
	done

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean: ## remove bin/ and demo output
	rm -rf bin demo/out

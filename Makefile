# ml-connector — one Makefile for the whole workspace (go.work).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

MODULES := proto platform cmd \
	connectors/gocardless connectors/ifscloud connectors/jde \
	services/ifs-poller services/jde-poller services/gc-webhook \
	services/payment-orchestrator services/erp-poster services/console \
	deploy/k8stest deploy/images
SERVICES := ifs-poller jde-poller gc-webhook payment-orchestrator erp-poster console
COMMANDS := mlcctl mlc-demo
# Simulators of the external systems: connectors/<system>/cmd/<name>.
SIMULATORS := $(wildcard connectors/*/cmd/*)
PKGS := $(foreach m,$(MODULES),./$(m)/...)
# Fuzz targets run briefly in make test (package:Target); their seed corpora
# also run as plain tests. The budget is a number of inputs, not a duration:
# a duration can end while the fuzzer is still starting up, which Go reports
# as a failure ("context deadline exceeded") on a busy machine.
FUZZ := ./platform/money:FuzzToMinor \
	./connectors/gocardless:FuzzParseWebhookMatchesStdlib \
	./services/gc-webhook/internal/webhook:FuzzWebhook
FUZZTIME ?= 3000x

# Pinned tools, installed with `go install` into .tools/bin.
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION        := v0.8.2
CRANE_VERSION              := v0.22.1
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(PATH)
export GOTOOLCHAIN := local

.PHONY: all build test lint proto proto-check demo chaos bench bench-webhook bench-e2e tools deps-check fmt-check clean images push pin k8s-check

all: build

## build: every binary into bin/
build:
	@mkdir -p bin
	go build -o bin/ $(foreach s,$(SERVICES),./services/$(s)) $(foreach c,$(COMMANDS),./cmd/$(c)) $(foreach s,$(SIMULATORS),./$(s))

# Images: one per service in SERVICES (adding a service there adds its image).
IMAGES_DIR      := bin/images
IMAGE_PLATFORMS ?= linux/amd64
REGISTRY        ?= ghcr.io/ml-connector
TAG             ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

## images: an OCI image per service into bin/images (no Docker daemon), digests printed
images:
	go run ./deploy/images build -out $(IMAGES_DIR) -platforms $(IMAGE_PLATFORMS) $(SERVICES)

## push: publish bin/images to REGISTRY as TAG and check the registry serves the same digests
push: $(TOOLS)/.crane-$(CRANE_VERSION)
	@test -f $(IMAGES_DIR)/digests.txt || { echo "run make images first"; exit 1; }
	@grep -v '^#' $(IMAGES_DIR)/digests.txt | while read -r s d; do \
		crane push $(IMAGES_DIR)/$$s $(REGISTRY)/$$s:$(TAG) >/dev/null; \
		got=$$(crane digest $(REGISTRY)/$$s:$(TAG)); \
		[ "$$got" = "$$d" ] || { echo "$$s: registry has $$got, built $$d"; exit 1; }; \
		echo "$(REGISTRY)/$$s:$(TAG)@$$d"; \
	done

## pin: make the prod overlay deploy the images of bin/images by digest (from REGISTRY)
pin:
	go run ./deploy/images pin -digests $(IMAGES_DIR)/digests.txt -registry $(REGISTRY) \
		-out deploy/k8s/overlays/prod/images/kustomization.yaml

## k8s-check: both overlays applied to a real kube-apiserver (built once, cached) with etcd;
## the rendered prod manifests run: 3-node NATS and the five services
k8s-check:
	@command -v etcd >/dev/null || { echo "k8s-check needs etcd (apt-get install etcd-server)"; exit 1; }
	MLC_KUBE_APISERVER=$$(deploy/apiserver/build.sh) MLC_SMOKE=1 \
		go test -count=1 -timeout 15m -run '^(TestAPIServer|TestRenderedManifestsRun)$$' -v ./deploy/k8stest

## test: every module's tests against real Postgres and NATS JetStream, then brief fuzzing
test:
	go test -count=1 -timeout 20m $(PKGS)
	@for f in $(FUZZ); do \
		echo "fuzz $${f##*:} for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${f##*:}$$" -fuzztime $(FUZZTIME) $${f%%:*} || exit 1; \
	done

## lint: formatting, go vet, staticcheck, consistent dependency versions
lint: tools fmt-check deps-check
	go vet $(PKGS)
	staticcheck $(PKGS)

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

deps-check:
	@.ci/deps-check $(MODULES)

## proto: regenerate the Go code of the contracts (offline, local plugins)
proto: tools
	cd proto && buf lint && buf generate

## proto-check: regenerate and fail if the committed code differs
proto-check: proto
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
		echo "generated code in proto/ is stale; run make proto and commit:"; git status --porcelain -- proto; exit 1; fi

## demo: the pipeline on an embedded NATS with its own database
demo: build
	bin/mlc-demo --invoices 200 --until-settled

## chaos: 5,000 invoices under mlc-demo --chaos (SEED=n replays a schedule), then mlcctl audit verify
CHAOS_INVOICES ?= 5000
CHAOS_DATABASE ?= mlc_chaos
PG_SERVER ?= postgres://postgres@127.0.0.1:5432
chaos: build
	bin/mlc-demo --invoices $(CHAOS_INVOICES) --until-settled --timeout 60m \
		--admin-database-url '$(PG_SERVER)/postgres?sslmode=disable' --database $(CHAOS_DATABASE) --chaos$(if $(SEED),=$(SEED))
	DATABASE_URL='$(PG_SERVER)/$(CHAOS_DATABASE)?sslmode=disable' MLC_MASTER_KEY="$$(cat $${TMPDIR:-/tmp}/mlc-demo-$(CHAOS_DATABASE).key)" \
		bin/mlcctl audit verify

## bench-e2e: the whole pipeline under load: latencies at MLC_BENCH_E2E_RATE invoices/s (50: about 100 events/s), RSS, 2,000 vs 10,000 invoices (MLC_BENCH_E2E_INVOICES=n: n vs 5n); BENCH_E2E=Latency or LinearCost runs one (see docs/benchmarks.md)
BENCH_E2E ?=
bench-e2e:
	MLC_BENCH_E2E=1 go test -count=1 -timeout 120m -v -run '^TestBench$(BENCH_E2E)' ./cmd/mlc-demo

## bench: every benchmark (see docs/benchmarks.md)
bench:
	go test -run '^$$' -bench . -benchmem $(PKGS)

## bench-webhook: gc-webhook under signed 250-event batches vs raw JetStream publish
bench-webhook:
	go build -o bin/ ./services/gc-webhook
	go run ./services/gc-webhook/cmd/webhook-bench --service bin/gc-webhook

## tools: install the pinned code generators and linters
tools: $(TOOLS)/.buf-$(BUF_VERSION) $(TOOLS)/.pgg-$(PROTOC_GEN_GO_VERSION) \
	$(TOOLS)/.pggg-$(PROTOC_GEN_GO_GRPC_VERSION) $(TOOLS)/.sc-$(STATICCHECK_VERSION)

$(TOOLS)/.buf-%:
	GOBIN=$(TOOLS)/bin go install github.com/bufbuild/buf/cmd/buf@$*
	@touch $@
$(TOOLS)/.pgg-%:
	GOBIN=$(TOOLS)/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@$*
	@touch $@
$(TOOLS)/.pggg-%:
	GOBIN=$(TOOLS)/bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$*
	@touch $@
$(TOOLS)/.crane-%:
	GOBIN=$(TOOLS)/bin go install github.com/google/go-containerregistry/cmd/crane@$*
	@touch $@
$(TOOLS)/.sc-%:
	GOBIN=$(TOOLS)/bin go install honnef.co/go/tools/cmd/staticcheck@$*
	@touch $@

clean:
	rm -rf bin

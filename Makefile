# modellab — the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
FUZZTIME ?= 10s

# Build metadata: `modellab version` prints them and /metrics exports them
# as modellab_build_info. The commit also comes from the Go build info when
# the go command stamps it.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Container tool of `make image`: docker when its daemon answers, else
# podman, else buildah.
CONTAINER ?= $(shell if docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null 2>&1; then echo podman; \
	elif command -v buildah >/dev/null 2>&1; then echo buildah; else echo docker; fi)
IMAGE ?= modellab:$(VERSION)
# podman and buildah write OCI images by default, which have no HEALTHCHECK.
CONTAINER_FLAGS ?= $(if $(filter podman buildah,$(CONTAINER)),--format docker,)

.PHONY: run test deps vet fmt-check fuzz bench soak build image check-deploy readme-check

run:
	$(GO) run ./cmd/modellab serve

# build writes a static binary (modernc.org/sqlite is pure Go) to bin/modellab.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/modellab ./cmd/modellab

# test starts (or installs) Redis and PostgreSQL when they are missing, then
# runs every test with the race detector. Knobs the tests read:
#   TEST_POSTGRES_URL=postgres://…      the server the PostgreSQL tests create
#                                       their throw-away databases on (default
#                                       postgres://postgres@127.0.0.1:5432/postgres)
#   MODELLAB_TEST_POSTGRES=skip         skip the PostgreSQL tests when that server
#                                       cannot be reached (else they fail)
#   MODELLAB_BROWSER_TESTS=off          skip the headless-Chromium test (and do
#                                       not install Chromium)
#   MODELLAB_CHROMIUM=/path/to/chrome   the browser the browser test drives
#   MODELLAB_CONTAINER_TESTS=off        skip the container image test (it runs
#                                       when podman or docker can run images)
#   MODELLAB_TEST_LOG=1                 with -v: the servers' logs in the output
#   MODELLAB_SCREENSHOTS=docs/screenshots  the browser test refreshes the screenshots
#   MODELLAB_SEED_BENCH=1               also seed the full data set on both engines
#                                       (store: TestSeedDefaultSize, a minute or two)
#   MODELLAB_OPENAPI_LINT=off           skip the Redocly lint of web/openapi.json
#   MODELLAB_APICLIENT_CHECK=off        skip regenerating the Go client to compare
test: deps vet fmt-check lint-openapi check-apiclient
	$(GO) test -race -count=1 -timeout 20m ./...

deps:
	./scripts/deps.sh

.PHONY: lint-openapi check-apiclient

# lint-openapi lints web/openapi.json with Redocly CLI (rules in
# redocly.yaml); skipped with a message where npm cannot install it.
lint-openapi:
	./scripts/lint-openapi.sh

# check-apiclient fails when apiclient/client.gen.go is not what the
# document generates (fix: go generate ./apiclient/).
check-apiclient:
	./scripts/check-apiclient.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# fuzz gives every fuzz target a short run (FUZZTIME each).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# soak runs the long tests (MODELLAB_SOAK=1); every measured figure is
# logged (-v). The fault-injection suite with longer, larger load phases
# (5x the clients of the Redis kill, 10x the staleness writes, 5x the
# isolation requests, a minute of noisy neighbour), under -race; the noisy
# neighbour once more without the race detector (its latency bound is
# asserted only there); then the scale-out suite without -race, since its
# figures are for the production build: the rolling restart behind nginx
# with 3 instances x 3 rounds and 48 clients, the latency table at
# 0/1/20 ms (TestLatencyTiers) and the per-request costs of the capacity
# model (TestCapacityCosts).
soak:
	MODELLAB_SOAK=1 $(GO) test -race -count=1 -timeout 60m -v ./faulttest/
	MODELLAB_SOAK=1 $(GO) test -count=1 -timeout 10m -v -run TestNoisyNeighbour ./faulttest/
	MODELLAB_SOAK=1 $(GO) test -count=1 -timeout 30m -v ./scaletest/

# image builds the container image from bin/modellab, without pulling
# anything (a scratch base with the host's CA bundle): see
# deploy/container/Dockerfile.prebuilt. The top-level Dockerfile builds the
# same image from source where a registry is reachable:
#   docker build -t modellab .
# CONTAINER_FLAGS passes extra flags to the build.
image: build
	rm -rf bin/image && mkdir -p bin/image/data
	cp bin/modellab bin/image/modellab
	cp /etc/ssl/certs/ca-certificates.crt bin/image/ca-certificates.crt
	$(CONTAINER) $(if $(filter buildah,$(CONTAINER)),bud,build) $(CONTAINER_FLAGS) \
		-f deploy/container/Dockerfile.prebuilt -t $(IMAGE) bin/image
	@echo "built $(IMAGE) with $(CONTAINER)"

# check-deploy checks the deployment files with the real tools: nginx -t
# on the nginx configuration, promtool on the alert rules and their unit
# tests, and the Go tests that parse compose.yaml and the Kubernetes
# manifests. A tool that cannot be installed is skipped with a message.
check-deploy:
	./scripts/check-deploy.sh

# readme-check clones the repository into a temporary directory and runs
# the README's commands there (scripts/fresh-clone.sh; FRESH_CLONE_FLAGS=
# --skip-test leaves out `make test`).
readme-check:
	./scripts/fresh-clone.sh $(FRESH_CLONE_FLAGS)

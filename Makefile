# modellab — the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
FUZZTIME ?= 10s

.PHONY: run test deps vet fmt-check fuzz bench soak build

run:
	$(GO) run ./cmd/modellab serve

build:
	$(GO) build -o bin/modellab ./cmd/modellab

# test starts (or installs) Redis and PostgreSQL when they are missing, then
# runs every test with the race detector.
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

# soak runs the fault-injection suite with longer, larger load phases
# (MODELLAB_SOAK=1: 5x the clients of the Redis kill, 10x the staleness
# writes, 5x the isolation requests); every measured figure is logged (-v).
soak:
	MODELLAB_SOAK=1 $(GO) test -race -count=1 -timeout 60m -v ./faulttest/

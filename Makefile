# strata — see README.md
GO      ?= go
BIN     ?= strata
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: build run test fuzz soak race bench apache-test clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

run: build
	./$(BIN) serve --addr 127.0.0.1 --port 8080 --data ./data --auth=none

# Every test, including short fuzz runs and the crash tests against the real
# binary. The real-Apache tests are tests/apache/e2e.sh (run by .ci/run).
test: build
	gofmt -l . | (! grep .) || (echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(MAKE) fuzz FUZZTIME=2s

FUZZTIME ?= 60s
fuzz:
	$(GO) test ./jsonx -run '^$$' -fuzz '^FuzzCompact$$' -fuzztime $(FUZZTIME)
	$(GO) test ./jsonx -run '^$$' -fuzz '^FuzzParseEvents$$' -fuzztime $(FUZZTIME)
	$(GO) test ./log -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/blake3 -run '^$$' -fuzz '^FuzzSum256$$' -fuzztime $(FUZZTIME)
	$(GO) test ./jsonx -run '^$$' -fuzz '^FuzzSetMember$$' -fuzztime $(FUZZTIME)
	$(GO) test ./auth -run '^$$' -fuzz '^FuzzParseToken$$' -fuzztime $(FUZZTIME)
	$(GO) test ./auth -run '^$$' -fuzz '^FuzzVerifyJWT$$' -fuzztime $(FUZZTIME)

soak: build
	STRATA_SOAK=1 $(GO) test -count=1 -timeout 60m -run 'Crash|Concurrent' -v ./tests/...

# Every package under the race detector, and the end-to-end tests against a
# server built with it (slow: minutes).
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./log ./api ./cgi ./query ./blobs ./jsonx ./auth ./quota ./tenants ./audit ./admin ./internal/...
	STRATA_E2E_RACE=1 $(GO) test -count=1 -timeout 20m ./tests/e2e

bench: build
	$(GO) run ./tests/bench

apache-test: build
	bash tests/apache/e2e.sh ./$(BIN)

clean:
	rm -f $(BIN)

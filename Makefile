# A pinned, patched Go toolchain; the go.mod line stays readable by older Go.
export GOTOOLCHAIN := go1.27.3
GOBIN := $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) go env GOPATH)/bin
STRIPE_MOCK_VERSION := v0.203.0

.PHONY: run build test test-short lint bench stripe-mock tools clean

run: ## run the shop on :8000 with settings from .env
	go run ./cmd/server

build: ## build bin/server
	CGO_ENABLED=0 go build -trimpath -o bin/server ./cmd/server

test: ## every test, with the race detector (needs stripe-mock: make stripe-mock)
	go test -race -count=1 ./...

test-short: ## unit tests only
	go test -short ./...

lint: ## formatting and vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	go vet ./...

bench: ## Go benchmarks of the hot paths
	go test -run '^$$' -bench . -benchmem ./...

tools: ## install stripe-mock, pinned
	go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

stripe-mock: tools ## start stripe-mock on :12111 unless it is running
	@(exec 3<>/dev/tcp/127.0.0.1/12111) 2>/dev/null && echo "stripe-mock already running on :12111" || \
	  { nohup $(GOBIN)/stripe-mock -http-port 12111 -https-port 12112 >/tmp/stripe-mock.log 2>&1 & sleep 1; echo "stripe-mock started on :12111"; }

clean:
	rm -rf bin

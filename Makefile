# A pinned, patched Go toolchain; the go.mod line stays readable by older Go.
export GOTOOLCHAIN := go1.27.3
GOBIN := $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) go env GOPATH)/bin
STRIPE_MOCK_VERSION := v0.203.0
MAILPIT_VERSION := v1.33.1
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
# The Go vulnerability database, as a module, turned into a local database so
# govulncheck works offline.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB_DIR := $(CURDIR)/.tmp/vulndb-$(VULNDB_VERSION)
FUZZTIME := 10s

.PHONY: run build test test-short lint vulncheck fuzz bench stripe-mock mailpit postgres tools clean

run: ## run the shop on :8000 with settings from .env
	go run ./cmd/server

build: ## build bin/server
	CGO_ENABLED=0 go build -trimpath -o bin/server ./cmd/server

test: ## every test, with the race detector (needs stripe-mock and mailpit: make stripe-mock mailpit)
	go test -race -count=1 ./...

test-short: ## unit tests only
	go test -short ./...

lint: ## formatting, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

vulncheck: $(VULNDB_DIR)/index/db.json ## govulncheck against a local copy of the Go vulnerability database
	go run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(VULNDB_DIR) ./...

$(VULNDB_DIR)/index/db.json:
	go mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	go run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) \
	  -vulns "$$(go env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $(VULNDB_DIR).new
	rm -rf $(VULNDB_DIR) && mv $(VULNDB_DIR).new $(VULNDB_DIR)

fuzz: ## run each fuzz target briefly (FUZZTIME=1m for longer)
	go test -run '^$$' -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZTIME) ./internal/web
	go test -run '^$$' -fuzz '^FuzzCheckoutCreate$$' -fuzztime $(FUZZTIME) ./internal/web

bench: tools ## hot-path Go benchmarks, the shop against a reference server, then the back office at a million orders (~8 min; PostgreSQL too with SHOP_TEST_POSTGRES_URL)
	go test -run '^$$' -bench . -benchmem -benchtime 300ms ./internal/orders ./internal/sqlite ./internal/web
	go run ./cmd/bench $(if $(SHOP_TEST_POSTGRES_URL),-postgres '$(SHOP_TEST_POSTGRES_URL)')

postgres: ## start a throwaway PostgreSQL 15 on :55432 and print its URL (export SHOP_TEST_POSTGRES_URL=$$(make -s postgres))
	@bash .ci/postgres.sh

tools: ## install stripe-mock and mailpit, pinned
	go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)
	go install github.com/axllent/mailpit@$(MAILPIT_VERSION)

stripe-mock: tools ## start stripe-mock on :12111 unless it is running
	@(exec 3<>/dev/tcp/127.0.0.1/12111) 2>/dev/null && echo "stripe-mock already running on :12111" || \
	  { nohup $(GOBIN)/stripe-mock -http-port 12111 -https-port 12112 >/tmp/stripe-mock.log 2>&1 & sleep 1; echo "stripe-mock started on :12111"; }

mailpit: tools ## start mailpit (SMTP 127.0.0.1:1025, web and API http://127.0.0.1:8025) unless it is running
	@$(GOBIN)/mailpit readyz --listen 127.0.0.1:8025 >/dev/null 2>&1 && echo "mailpit already running on :8025" || \
	  { nohup $(GOBIN)/mailpit --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025 --smtp-auth-accept-any --smtp-auth-allow-insecure \
	      --smtp-disable-rdns --disable-version-check >/tmp/mailpit.log 2>&1 & sleep 1; echo "mailpit started: SMTP 127.0.0.1:1025, web http://127.0.0.1:8025"; }

clean:
	rm -rf bin

.PHONY: demo screenshots

demo: tools ## the whole shop offline (stripe-mock, Checkout simulator, mailpit for the emails, shop in demo mode); prints the URLs
	go build -o bin/demo ./cmd/demo
	bin/demo -stripe-mock $(GOBIN)/stripe-mock -mailpit $(GOBIN)/mailpit

screenshots: ## refresh docs/screenshots/*.png with headless Chromium (needs stripe-mock: make stripe-mock)
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots go test ./internal/e2e -run TestHappyPath -count=1

.PHONY: crash

crash: ## SIGKILL the real server 100 times under webhook load: no acknowledged event lost, no order fulfilled twice
	CRASH_ROUNDS=100 go test -count=1 -timeout 30m -v -run '^TestCrashUnderLoad$$' ./internal/crashtest

# cacheproxy: build, test, demo and benchmarks. Needs Go; `make demo` also
# uses curl, and redis-server when it is installed.

GO ?= go

.PHONY: build test demo demo-django bench gobench

## build: compile every command into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: gofmt check, go vet and the race-enabled tests
test:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l reports unformatted files:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## demo: run the quickstart (demo origin, Redis if installed, the proxy) and show a MISS then a HIT;
## make demo KEEP=1 leaves it all running (dashboard included) until Ctrl-C
demo:
	KEEP=$(KEEP) bash scripts/demo.sh

## demo-django: a Django REST framework API (examples/django) behind the proxy: MISS without a route, HIT with one, refresh after a write
demo-django:
	bash scripts/demo-django.sh

## bench: the load benchmarks against nginx, Varnish and a plain Go proxy (bench/run.sh; about 20 minutes)
bench:
	bash bench/run.sh

## gobench: the Go benchmarks of the hot path
gobench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

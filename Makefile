# prepred — the commands the README documents.
#   make run     install what is missing, build, start pred (:50051/:8001) and prep (:8000)
#   make test    every test of every module, with the real ONNX Runtime and generated models
#   make check   generated code up to date, gofmt, go vet, staticcheck
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

MODULES := ./api/... ./pred/... ./prep/... ./deploy/...
GO_TEST_FLAGS ?= -timeout 30m
STATICCHECK_VERSION := v0.8.2
BIN := bin
TOOLS := .cache/tools/bin

.PHONY: run test check build models onnxruntime helm jaeger run-jaeger golden bench fmt deps-build deps-test test-containers test-k8s

# deps-build and deps-test install the Debian packages the commands below
# need when they are missing (as root or with passwordless sudo), or stop at
# once naming them: see scripts/install-deps.sh.
deps-build:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

onnxruntime:
	@scripts/install-onnxruntime.sh >/dev/null

models:
	@scripts/gen-models.sh

# golden makes the Pillow reference tensors the imageprep tests compare with
# (Debian python3-pil and python3-numpy; deterministic, about 2 s), again
# when make_golden.py is newer than them.
golden:
	@scripts/install-deps.sh golden
	@test testdata/golden/pixels.bin.gz -nt scripts/golden/make_golden.py || /usr/bin/python3 scripts/golden/make_golden.py

# helm renders the Kubernetes chart in the deployment tests.
helm:
	@scripts/install-helm.sh >/dev/null

# jaeger builds the trace backend the tracing test exports to (Jaeger
# v1.75.0 from the scripts/tools module, about 10 minutes once); run-jaeger starts
# it in memory with its OTLP receivers on :4317/:4318 and the UI on :16686.
jaeger:
	@scripts/install-jaeger.sh >/dev/null

run-jaeger: jaeger
	$(TOOLS)/jaeger

build: deps-build
	go build -o $(BIN)/pred ./pred/cmd/pred
	go build -o $(BIN)/prep ./prep/cmd/prep

# run starts pred in the background and prep in the foreground; Ctrl-C stops both.
run: onnxruntime models build
	@ORT="$$(scripts/install-onnxruntime.sh)"; \
	$(BIN)/pred --model-repository models --ort-lib "$$ORT" & pred=$$!; \
	trap 'kill -TERM $$pred 2>/dev/null; wait $$pred' EXIT; \
	$(BIN)/prep --pred-address localhost:50051

test: deps-build deps-test onnxruntime models helm jaeger golden
	ONNXRUNTIME_LIB="$$(scripts/install-onnxruntime.sh)" go test $(GO_TEST_FLAGS) $(MODULES)

# test-containers builds both images and checks docker-compose.yml on a real
# Docker engine (its own dockerd when none answers): scripts/test-containers.sh.
test-containers:
	scripts/test-containers.sh

# test-k8s installs the Helm chart on a one-node Kubernetes cluster built on
# this machine (scripts/k8s-up.sh; Kubernetes from the module proxy, about
# 20 minutes to build once) and checks it under load: scripts/test-k8s.sh.
test-k8s:
	scripts/test-k8s.sh

check: deps-build
	scripts/gen-proto.sh --check
	@out="$$(gofmt -l api pred prep $$(test -d deploy && echo deploy))"; if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(MODULES)
	@if [[ ! -x $(TOOLS)/staticcheck ]]; then GOBIN="$$PWD/$(TOOLS)" GOWORK=off go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); fi
	$(TOOLS)/staticcheck $(MODULES)

fmt:
	gofmt -w api pred prep $$(test -d deploy && echo deploy)

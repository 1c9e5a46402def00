# The README's two commands are `make run` and `make test`; both do all set-up themselves.
SWIFT ?= /opt/swift/usr/bin/swift
PREFIX ?= /usr
DESTDIR ?=

.PHONY: deps build release run test bench install clean

deps:
	./Deploy/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	./Deploy/run-demo.sh

test: deps
	./Tests/run-all.sh

bench: release
	./Benchmarks/run-all.sh

clean:
	rm -rf .build

install: release
	./Deploy/install.sh --destdir "$(DESTDIR)" --prefix "$(PREFIX)"

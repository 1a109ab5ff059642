# The C face of evloop: build the library and the C examples, run the C tests, install.
#
#   make                      libevloop.so/.a (target/release) and the examples (build/examples)
#   make test-c               the C test suite on every backend, then under ASan and valgrind
#   make test-diff            differential tests against libuv (needs libuv1-dev)
#   make test-adapters        the hiredis, libcurl and c-ares adapters against local servers
#   make install PREFIX=/usr/local   library + SONAME links, include/evloop.h, evloop.pc, CMake config
#   make abi-check            the library's ABI against the release baseline in abi/ (libabigail)
#   make dist                 every release artifact in dist/: C tarball, Python wheels + sdist,
#                             npm tarball (packaging/README.md)
#
# Examples and tests build with -Wall -Wextra -Werror.

VERSION := $(shell packaging/version.sh)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
PREFIX ?= /usr/local
LIBDIR := target/release
CC ?= cc
CFLAGS ?= -O2 -g
STRICT := -std=c11 -Wall -Wextra -Werror
LINK := -L$(LIBDIR) -levloop -Wl,-rpath,$(CURDIR)/$(LIBDIR) -lpthread
EXAMPLES := $(patsubst examples/c/%.c,build/examples/%,$(wildcard examples/c/*.c))
VALGRIND := valgrind --suppressions=tests/c/valgrind.supp --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite -q

.PHONY: all lib examples adapters test-adapters test-c test-diff header-check install clean bench bench-quick \
	abi-check abi-dump abi-selftest dist dist-c dist-python dist-npm test-dist

all: lib examples

# libevloop.so is linked from libevloop.a by ffi/link.sh (ffi/evloop.map its one version script),
# then given its SONAME links.
lib:
	cargo build --release --quiet -p evloop-ffi
	ffi/link.sh $(LIBDIR)/libevloop.so.$(VERSION) $(LIBDIR)/libevloop.a $(MAJOR)
	ln -sf libevloop.so.$(VERSION) $(LIBDIR)/libevloop.so.$(MAJOR)
	ln -sf libevloop.so.$(MAJOR) $(LIBDIR)/libevloop.so

build/examples/%: examples/c/%.c include/evloop.h lib
	@mkdir -p build/examples
	$(CC) $(CFLAGS) $(STRICT) -Iinclude -o $@ $< $(LINK)

examples: $(EXAMPLES)

build/test_evloop: tests/c/test_evloop.c include/evloop.h lib
	@mkdir -p build
	$(CC) $(CFLAGS) $(STRICT) -Iinclude -o $@ $< $(LINK)

# The same suite built with AddressSanitizer (and LeakSanitizer): the C side is instrumented,
# and every allocation of the library goes through the sanitizer's malloc too.
build/test_evloop_asan: tests/c/test_evloop.c include/evloop.h lib
	@mkdir -p build
	$(CC) -O1 -g -fsanitize=address -fno-omit-frame-pointer $(STRICT) -Iinclude -o $@ $< $(LINK)

# Differential tests against libuv, the oracle (tests/diff/diff_libuv.c): 300 random sequences
# of fd-watcher and timer operations on evloop (both backends) and on libuv must agree.
build/diff_libuv: tests/diff/diff_libuv.c include/evloop.h lib
	@mkdir -p build
	$(CC) $(CFLAGS) $(STRICT) -Iinclude -o $@ $< $(LINK) $(shell pkg-config --cflags --libs libuv)

test-diff: build/diff_libuv
	build/diff_libuv --seeds 300 --jobs 8

# The adapters (include/evloop/adapters/, header-only) and their examples: each built against the
# library it adapts (hiredis, libcurl, c-ares: libhiredis-dev, libcurl4-openssl-dev, libc-ares-dev).
ADAPTERS := hiredis:hiredis curl:libcurl ares:libcares
ADAPTER_EXAMPLES := redis_counter:hiredis http_get:libcurl resolve:libcares
ADAPTER_HEADERS := $(wildcard include/evloop/adapters/*.h)
pkg_of = $(lastword $(subst :, ,$(filter $(1):%,$(2))))

build/adapters/test_%: tests/c/adapters/test_%.c tests/c/adapters/common.h $(ADAPTER_HEADERS) include/evloop.h lib
	@mkdir -p build/adapters
	$(CC) $(CFLAGS) $(STRICT) -Iinclude -o $@ $< $(LINK) $(shell pkg-config --cflags --libs $(call pkg_of,$*,$(ADAPTERS)))

build/examples/adapters/%: examples/c/adapters/%.c $(ADAPTER_HEADERS) include/evloop.h lib
	@mkdir -p build/examples/adapters
	$(CC) $(CFLAGS) $(STRICT) -Iinclude -o $@ $< $(LINK) $(shell pkg-config --cflags --libs $(call pkg_of,$*,$(ADAPTER_EXAMPLES)))

adapters: $(foreach a,$(ADAPTERS),build/adapters/test_$(firstword $(subst :, ,$(a)))) \
	$(foreach e,$(ADAPTER_EXAMPLES),build/examples/adapters/$(firstword $(subst :, ,$(e))))

test-adapters: adapters
	tests/c/adapters/run.sh build/adapters build/examples/adapters

# The header alone compiles as strict C99 and as C++11.
header-check: include/evloop.h
	@mkdir -p build
	printf '#include <evloop.h>\nint main(void) { return evl_version() == 0; }\n' > build/header_check.c
	$(CC) -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude -c build/header_check.c -o build/header_check.o
	cp build/header_check.c build/header_check.cpp
	$(CXX) -std=c++11 -Wall -Werror -Iinclude -c build/header_check.cpp -o build/header_check_cpp.o

test-c: build/test_evloop build/test_evloop_asan header-check
	@echo "== exported symbols: evl_* only, each in a version node of ffi/evloop.map"
	@bad=$$(nm -D --defined-only $(LIBDIR)/libevloop.so | awk '$$2 != "A" {print $$3}' | grep -v '^evl_' || true); \
	  if [ -n "$$bad" ]; then echo "non-evl symbols exported: $$bad"; exit 1; fi
	@bad=$$(objdump -T $(LIBDIR)/libevloop.so | awk '/ evl_/ && $$(NF-1) !~ /^EVLOOP_/' || true); \
	  if [ -n "$$bad" ]; then echo "unversioned symbols: $$bad"; exit 1; fi
	@readelf -d $(LIBDIR)/libevloop.so | grep -q 'SONAME.*libevloop.so.$(MAJOR)' || { echo "SONAME missing"; exit 1; }
	@echo "== C tests"
	build/test_evloop
	@echo "== C tests under AddressSanitizer"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 build/test_evloop_asan
	@echo "== C tests under valgrind"
	@# valgrind 3.19 does not know pidfd_open (it returns ENOSYS), so spawning is left out here.
	$(VALGRIND) build/test_evloop epoll -spawn
	@# It also keeps its one-thread-at-a-time lock while a thread sits in io_uring_enter, so
	@# thread-pool workers crawl (a syscall each per loop wake-up) while an io_uring loop waits:
	@# tests whose work runs on the pool are checked under valgrind on epoll only. And it cannot
	@# see the kernel fill a read buffer through the ring, so file reads look uninitialised:
	@# the file tests too run under valgrind on epoll only.
	@# For the same reason a test whose client runs on a thread of its own stalls there.
	$(VALGRIND) build/test_evloop uring -on_pool -spawn -files -client_thread

# The same install as the C release tarball's (packaging/c/Makefile), from the build tree.
install: dist-c
	$(MAKE) -C build/dist-c/libevloop-$(VERSION) install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)

# The ABI of the release in abi/ (scripts/abi.sh says how it is compared).
abi-check: lib
	scripts/abi.sh check
abi-dump: lib
	scripts/abi.sh dump
# abi-check's own test: deliberately broken builds must fail it.
abi-selftest: lib
	scripts/abi.sh selftest

# Release artifacts (packaging/README.md).
dist: dist-c dist-python dist-npm
dist-c: lib
	packaging/c/stage.sh build/dist-c dist
dist-python:
	packaging/python/build.sh dist
dist-npm:
	packaging/npm/pack.sh dist
# Each artifact installed where no Rust toolchain is on PATH, then a real program run on it.
test-dist: dist
	packaging/test_installs.sh dist

clean:
	rm -rf build

# Every benchmark against its peers (installs the missing ones): BENCHMARKS.md, ~30 minutes.
bench:
	bench/run_all.sh

# One short round of each, for development: bench/results/QUICK.md, a few minutes.
bench-quick:
	bench/run_all.sh --quick

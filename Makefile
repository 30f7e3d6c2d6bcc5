# bucketnfs - one non-recursive Makefile.
#
#   make            build bin/bucketnfsd (and the unit tests)
#   make run        install missing Debian packages, build, serve the demo export
#   make test       install missing packages, build, run every test
#   make check      the same tests built with AddressSanitizer + UBSan
#   make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean
#
# Every .c under the layer folders goes into one static library; programs
# and tests link against it.  New files need no edit here.

SAN ?=
ifeq ($(SAN),1)
B := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DBNFS_DEBUG
else
B := build
SANFLAGS :=
endif

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
OPT ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS += -I. -I$(B)/gen -I/usr/include/tirpc -D_GNU_SOURCE
CFLAGS += -std=c11 $(OPT) $(WARN) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS += $(SANFLAGS) -pthread
LDLIBS := -ltirpc -ldb -lconfig -lcurl -lssl -lcrypto -lexpat -lm

LAYERS := common rpc meta objstore cache nfsd mountd
MAINS := nfsd/bucketnfsd.c tools/bucketnfs.c
XFILES := $(wildcard nfsd/*.x mountd/*.x)
GEN_H := $(patsubst %.x,$(B)/gen/%.h,$(notdir $(XFILES)))
GEN_C := $(patsubst %.x,$(B)/gen/%_xdr.c,$(notdir $(XFILES)))
LIB_SRCS := $(filter-out $(MAINS),$(wildcard $(addsuffix /*.c,$(LAYERS))))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o) $(GEN_C:$(B)/gen/%.c=$(B)/obj/gen/%.o)
LIB := $(B)/libbucketnfs.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
IT_SRCS := $(wildcard tests/integration/it_*.c)
IT_BINS := $(IT_SRCS:tests/integration/%.c=$(B)/tests/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(B)/bench/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
# Programs are linked per build ($(B)/bin); the plain build also copies them
# to bin/, the paths operators and the README use.  A sanitizer build never
# touches bin/, so `make check` cannot leave an instrumented daemon behind.
PROG_NAMES := bucketnfsd $(if $(wildcard tools/bucketnfs.c),bucketnfs)
BUILD_PROGS := $(PROG_NAMES:%=$(B)/bin/%)
ifeq ($(SAN),1)
PROGS := $(BUILD_PROGS)
else
PROGS := $(BUILD_PROGS) $(PROG_NAMES:%=bin/%)
endif

.PHONY: all run test check fuzz install clean deps tests bench
.DEFAULT_GOAL := all

all: $(PROGS) tests

tests: $(UNIT_BINS) $(IT_BINS) $(BENCH_BINS)

deps:
	@tools/install-deps.sh build

# rpcgen output: header and XDR routines only (the transport is ours).
$(B)/gen/%.h: nfsd/%.x
	@mkdir -p $(@D)
	rm -f $@; rpcgen -h -o $@ $<
$(B)/gen/%.h: mountd/%.x
	@mkdir -p $(@D)
	rm -f $@; rpcgen -h -o $@ $<
# rpcgen names the header by the .x path; the header sits beside the .c here.
$(B)/gen/%_xdr.c: nfsd/%.x $(B)/gen/%.h
	rpcgen -c $< | sed 's|#include "nfsd/|#include "|' > $@
$(B)/gen/%_xdr.c: mountd/%.x $(B)/gen/%.h
	rpcgen -c $< | sed 's|#include "mountd/|#include "|' > $@

# Generated XDR code is not ours to keep warning-free.
$(B)/obj/gen/%.o: $(B)/gen/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=gnu11 $(OPT) $(SANFLAGS) -w -c -o $@ $<

$(B)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(B)/bin/bucketnfsd: $(B)/obj/nfsd/bucketnfsd.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/bin/bucketnfs: $(B)/obj/tools/bucketnfs.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin/%: build/bin/%
	@mkdir -p $(@D)
	cp $< $@

$(B)/tests/test_%: $(B)/obj/tests/unit/test_%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/it_%: $(B)/obj/tests/integration/it_%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lnfs

$(B)/bench/%: $(B)/obj/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lnfs

# libFuzzer targets: clang, ASan + UBSan, against the library sources.
FUZZ_CFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -pthread
build-fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(GEN_C) $(GEN_H)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -w -o $@ $< $(LIB_SRCS) $(GEN_C) $(LDLIBS)

FUZZ_SECONDS ?= 20
fuzz: $(FUZZ_BINS)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

run: deps
	@$(MAKE) --no-print-directory all
	@tools/run-demo.sh

test: deps
	@$(MAKE) --no-print-directory all
	@tools/install-deps.sh test
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@tests/run.sh $(B)

check: deps
	@$(MAKE) --no-print-directory SAN=1 all
	@tools/install-deps.sh test
	@BNFS_SAN=1 tests/run.sh build-san

# Benchmarks against nfs-ganesha (needs root: ganesha's VFS FSAL opens by handle).
# make bench [BENCH="meta cache"] [BENCH_ARGS=...] [CACHE_BENCH_ARGS=...]
# meta: bench/run.sh (metadata ops vs ganesha); cache: bench/cache.sh (the
# read path: cached reads vs ganesha, cold reads through a shaped link).
BENCH ?= meta cache
bench: $(B)/bench/nfsbench $(B)/bench/shapeproxy $(PROGS)
	@tools/install-deps.sh bench
	$(if $(filter meta,$(BENCH)),@bench/run.sh $(BENCH_ARGS))
	$(if $(filter cache,$(BENCH)),@bench/cache.sh $(CACHE_BENCH_ARGS))

install: $(BUILD_PROGS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/etc/bucketnfs
	install -m 0755 $(B)/bin/bucketnfsd $(DESTDIR)$(PREFIX)/sbin/bucketnfsd
	$(if $(wildcard tools/bucketnfs.c),install -m 0755 $(B)/bin/bucketnfs $(DESTDIR)$(PREFIX)/bin/bucketnfs)
	install -m 0644 etc/bucketnfs.conf etc/exports.conf $(DESTDIR)$(PREFIX)/etc/bucketnfs/

clean:
	rm -rf build build-san build-fuzz bin

-include $(shell find $(B) -name '*.d' 2>/dev/null)

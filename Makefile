# bucketnfs - one non-recursive Makefile.
#
#   make            build bin/bucketnfsd (and the unit tests)
#   make run        install missing Debian packages (and rpcbind), build, serve the demo export
#   make test       install missing packages, build, run every test
#   make check      the same tests built with AddressSanitizer + UBSan
#   make tsan       the concurrency tests built with ThreadSanitizer (build-tsan)
#   make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS
#   make soak       64 connections of mixed load for SOAK_SECONDS (600) against
#                   moto_server; report and plot in build/soak/
#   make install    PREFIX=/usr/local DESTDIR=  (see "Installing" below)
#   make clean
#
# Every .c under the layer folders goes into one static library; programs
# and tests link against it.  New files need no edit here.

SAN ?=
TSAN ?=
ifeq ($(SAN),1)
B := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DBNFS_DEBUG
else ifeq ($(TSAN),1)
# ThreadSanitizer (make tsan): its own build folder, like SAN=1.
B := build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -DBNFS_DEBUG
else
B := build
SANFLAGS :=
endif

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
# /etc for a system install (PREFIX=/usr), PREFIX/etc otherwise.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
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
SOAK_SRCS := $(wildcard tests/soak/soak*.c)
SOAK_BINS := $(SOAK_SRCS:tests/soak/%.c=$(B)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
# Programs are linked per build ($(B)/bin); the plain build also copies them
# to bin/, the paths operators and the README use.  A sanitizer build never
# touches bin/, so `make check` cannot leave an instrumented daemon behind.
PROG_NAMES := bucketnfsd $(if $(wildcard tools/bucketnfs.c),bucketnfs)
BUILD_PROGS := $(PROG_NAMES:%=$(B)/bin/%)
ifneq ($(SAN)$(TSAN),)
PROGS := $(BUILD_PROGS)
else
PROGS := $(BUILD_PROGS) $(PROG_NAMES:%=bin/%)
endif

.PHONY: all run test check tsan fuzz soak install clean deps tests bench crashtest
# Keep generated sources and objects that pattern rules make as intermediates
# (else building one test deletes them and the next build starts over).
.SECONDARY:
.DEFAULT_GOAL := all

all: $(PROGS) tests

tests: $(UNIT_BINS) $(IT_BINS) $(BENCH_BINS) $(SOAK_BINS)

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

# A copy and a rename: a daemon running from bin/ keeps its file, and the
# build does not fail with "Text file busy".
bin/%: build/bin/%
	@mkdir -p $(@D)
	cp $< $@.tmp && mv -f $@.tmp $@

$(B)/tests/test_%: $(B)/obj/tests/unit/test_%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/it_%: $(B)/obj/tests/integration/it_%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lnfs

$(B)/bench/%: $(B)/obj/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lnfs

$(B)/tests/soak%: $(B)/obj/tests/soak/soak%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lnfs

# libFuzzer targets: clang, ASan + UBSan.  The library sources are compiled
# once into build-fuzz/obj (instrumented for coverage with fuzzer-no-link:
# no libFuzzer main in them) and archived; each target is its own object
# linked against that archive, with libFuzzer's main only at the link.
FUZZ_CFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -pthread -MMD -MP
FUZZ_LINK := -fsanitize=fuzzer,address,undefined -pthread
FUZZ_OBJS := $(LIB_SRCS:%.c=build-fuzz/obj/%.o) $(GEN_C:$(B)/gen/%.c=build-fuzz/obj/gen/%.o)
FUZZ_LIB := build-fuzz/libbucketnfs.a
FUZZ_LDFLAGS :=
# The configuration's host names are answered by the target itself (no network).
build-fuzz/fuzz_conf: FUZZ_LDFLAGS := -Wl,--wrap=getaddrinfo
build-fuzz/obj/gen/%.o: $(B)/gen/%.c $(GEN_H)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -w -c -o $@ $<
build-fuzz/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -w -c -o $@ $<
$(FUZZ_LIB): $(FUZZ_OBJS)
	rm -f $@
	ar rcs $@ $^
build-fuzz/fuzz_%: build-fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	clang $(FUZZ_LINK) -o $@ $^ $(LDLIBS) $(FUZZ_LDFLAGS)

FUZZ_SECONDS ?= 20
fuzz: $(FUZZ_BINS)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# make run: the build's packages and rpcbind (tools/start-rpcbind.sh starts it, as root), so
# that a client's plain `mount HOST:/demo /mnt` finds the demo's ports.
run:
	@tools/install-deps.sh run
	@$(MAKE) --no-print-directory all
	@tools/run-demo.sh

test: deps
	@$(MAKE) --no-print-directory all
	@tools/install-deps.sh test
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@tests/run.sh $(B)

# The crash campaign at full size (not part of make test, which runs 3 small trials).
crashtest: deps
	@$(MAKE) --no-print-directory all
	@BNFS_CRASH_TRIALS=$${BNFS_CRASH_TRIALS:-50} BNFS_CRASH_MB=$${BNFS_CRASH_MB:-1024} \
	    BNFS_CRASH_RENAME_MS="$${BNFS_CRASH_RENAME_MS:-100 300 500 700 900 1100 1300 1500 1700 1900 2100 2300 2500 2700 2900 3100 3400 3700 4000 4300}" \
	    bash tests/integration/crash.sh

check: deps
	@$(MAKE) --no-print-directory SAN=1 all
	@tools/install-deps.sh test
	@BNFS_SAN=1 tests/run.sh build-san

# ThreadSanitizer (not part of make test: about 3 minutes of unit tests and
# the core and write integration suites against a TSan daemon).
tsan: deps
	@$(MAKE) --no-print-directory TSAN=1 all
	@tools/install-deps.sh test
	@tests/tsan.sh build-tsan

# The soak (not part of make test): tests/soak/soak.sh, SOAK_SECONDS of mixed
# load (SOAK_CONNS, SOAK_WRITE_MBPS, SOAK_SEEDS: see there); the verdict line
# "soak: N passed, N failed", build/soak/report.md and build/soak/soak.png.
SOAK_SECONDS ?= 600
soak: deps
	@$(MAKE) --no-print-directory all
	@tools/install-deps.sh soak
	@tests/soak/soak.sh $(SOAK_SECONDS)

# Benchmarks against nfs-ganesha (needs root: ganesha's VFS FSAL opens by handle).
# make bench [BENCH="meta cache write"] [BENCH_ARGS=...] [CACHE_BENCH_ARGS=...]
#            [WRITE_BENCH_ARGS=...]
# meta: bench/run.sh (metadata ops vs ganesha); cache: bench/cache.sh (the
# read path: cached reads vs ganesha, cold reads through a shaped link);
# write: bench/write.sh (the write path: writes and creates vs ganesha,
# uploads vs boto3 through a shaped link, untar with the kernel client, a
# directory's RENAME vs ganesha and boto3).
BENCH ?= meta cache
bench: $(B)/bench/nfsbench $(B)/bench/shapeproxy $(B)/tests/it_nfsop $(PROGS)
	@tools/install-deps.sh bench
	$(if $(filter meta,$(BENCH)),@bench/run.sh $(BENCH_ARGS))
	$(if $(filter cache,$(BENCH)),@bench/cache.sh $(CACHE_BENCH_ARGS))
	$(if $(filter write,$(BENCH)),@bench/write.sh $(WRITE_BENCH_ARGS))

# ---- Installing
#
# Programs (SBINDIR, BINDIR), the systemd unit (SYSTEMDUNITDIR), the man
# pages (MANDIR/man8) and the configuration (SYSCONFDIR/bucketnfs).  The
# unit and the man pages name the installed paths (@SBINDIR@, @SYSCONFDIR@
# replaced here).  The configuration is the repository's etc/*.conf with
# the paths of a system install: state in /var/lib/bucketnfs, cache in
# /var/cache/bucketnfs, the dir store's buckets in /var/lib/bucketnfs/buckets
# (the folders bucketnfsd.service lets systemd create), clients limited to
# this host.  An existing bucketnfs.conf or exports.conf is never
# overwritten: the new one goes beside it as *.example.
INSTALL_SED := -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
               -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'
SYS_CONF_SED := -e 's|"\.\./var/state"|"/var/lib/bucketnfs"|' \
                -e 's|"\.\./var/cache"|"/var/cache/bucketnfs"|' \
                -e 's|"\.\./var/buckets"|"/var/lib/bucketnfs/buckets"|' \
                -e 's|-c etc/bucketnfs\.conf|-c $(SYSCONFDIR)/bucketnfs/bucketnfs.conf|' \
                -e '/^\# errors, so a typo/a\# Installed for bucketnfsd.service: a folder outside /var/lib/bucketnfs and\n\# /var/cache/bucketnfs must be added to its ReadWritePaths= (systemctl edit\n\# bucketnfsd), or the service cannot write there.' \
                -e 's|( "127\.0\.0\.0/8", "10\.0\.2\.0/24" ); \# this host, QEMU.s user network|( "127.0.0.0/8" );  \# this host only: add your clients'"'"' networks|'
MAN_PAGES := docs/bucketnfsd.8 docs/bucketnfs.8

install: $(BUILD_PROGS)
	@rm -rf $(B)/install && mkdir -p $(B)/install
	@echo "sed: etc/bucketnfsd.service $(MAN_PAGES) etc/bucketnfs.conf etc/exports.conf -> $(B)/install/"
	@sed $(INSTALL_SED) etc/bucketnfsd.service >$(B)/install/bucketnfsd.service
	@$(foreach m,$(MAN_PAGES),sed $(INSTALL_SED) $(m) >$(B)/install/$(notdir $(m)) &&) true
	@$(foreach c,bucketnfs.conf exports.conf,sed $(INSTALL_SED) $(SYS_CONF_SED) etc/$(c) >$(B)/install/$(c) &&) true
	@if grep -n '@[A-Z]*DIR@\|\.\./var\|10\.0\.2\.0' $(B)/install/*; then \
	    echo "install: a path above was not replaced for the install" >&2; exit 1; fi
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/bucketnfs
	install -m 0755 $(B)/bin/bucketnfsd $(DESTDIR)$(SBINDIR)/bucketnfsd
	install -m 0755 $(B)/bin/bucketnfs $(DESTDIR)$(BINDIR)/bucketnfs
	install -m 0644 $(B)/install/bucketnfsd.service $(DESTDIR)$(SYSTEMDUNITDIR)/bucketnfsd.service
	install -m 0644 $(addprefix $(B)/install/,$(notdir $(MAN_PAGES))) $(DESTDIR)$(MANDIR)/man8/
	@for c in bucketnfs.conf exports.conf; do \
	    dst=$(DESTDIR)$(SYSCONFDIR)/bucketnfs/$$c; \
	    if [ -e "$$dst" ]; then \
	        echo "install -m 0644 $(B)/install/$$c $$dst.example  ($$dst exists: kept)"; \
	        install -m 0644 $(B)/install/$$c "$$dst.example" || exit 1; \
	    else \
	        echo "install -m 0644 $(B)/install/$$c $$dst"; \
	        install -m 0644 $(B)/install/$$c "$$dst" || exit 1; \
	    fi; \
	done

clean:
	rm -rf build build-san build-tsan build-fuzz bin

-include $(shell find $(B) build-fuzz -name '*.d' 2>/dev/null)

# GNU Makefile for the whole tree.
#
# Layout: src/<area>/<name>.c holding main() is a program, installed as
# bin/<name>; every other .c under src/ goes into a library. Only src/tls
# may use OpenSSL, so its modules form their own library (libqtls.a), and
# only programs under src/tls link it. src/<area>/<name>.sh is a script,
# installed as bin/<name> with @PREFIX@ and @SPLIT@ filled in.
#
#   make                 build everything into build/ (build-san/ with SAN=1)
#   make check           unit tests, then end-to-end tests
#   make SAN=1 check     the same with ASan and UBSan
#   make run             start the mail system in ./instance
#   make install         PREFIX (default /var/qmail) and DESTDIR
#   make clean

PREFIX ?= /var/qmail
DESTDIR ?=
SPLIT ?= 23
SAN ?= 0
WERROR ?= 0
INSTANCE ?= $(CURDIR)/instance
PYTHON := /usr/bin/python3

ifeq ($(SAN),1)
BUILD ?= build-san
else
BUILD ?= build
endif

CC ?= cc
PKG_CONFIG ?= pkg-config

OPT := -O2
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
ifeq ($(SAN),1)
OPT := -O1
HARDEN := -fstack-protector-strong -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
WARN := -Wall -Wextra -Wformat=2 -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

UNAME := $(shell uname -s)
ifeq ($(UNAME),Linux)
# glibc hides BSD interfaces (flock, setgroups) under -std=c17 unless asked.
FEATURES := -D_DEFAULT_SOURCE -D_XOPEN_SOURCE=700
endif

CDB_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcdb 2>/dev/null)
CDB_LIBS := $(shell $(PKG_CONFIG) --libs libcdb 2>/dev/null || echo -lcdb)
CRYPT_LIBS := $(shell $(PKG_CONFIG) --libs libxcrypt 2>/dev/null || echo -lcrypt)
SSL_CFLAGS := $(shell $(PKG_CONFIG) --cflags openssl 2>/dev/null)
SSL_LIBS := $(shell $(PKG_CONFIG) --libs openssl 2>/dev/null || echo -lssl -lcrypto)

CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS := -std=c17 $(OPT) -g $(WARN) $(HARDEN) $(FEATURES) -fPIE \
	-Isrc -I$(BUILD)/gen $(CDB_CFLAGS) -MMD -MP $(CFLAGS)
ALL_LDFLAGS := -pie -Wl,-z,relro -Wl,-z,now -Wl,--as-needed $(HARDEN) $(LDFLAGS)
LIBS := $(CDB_LIBS) $(CRYPT_LIBS) -lresolv

AREAS := $(filter-out src/tls,$(wildcard src/*))
ALL_C := $(wildcard $(addsuffix /*.c,$(AREAS)))
TLS_C := $(wildcard src/tls/*.c)
LP := (
MAIN_RE := '^int main$(LP)'
MAIN_C := $(shell grep -l $(MAIN_RE) $(ALL_C) /dev/null 2>/dev/null)
TLS_MAIN_C := $(shell grep -l $(MAIN_RE) $(TLS_C) /dev/null 2>/dev/null)
LIB_C := $(filter-out $(MAIN_C),$(ALL_C))
TLSLIB_C := $(filter-out $(TLS_MAIN_C),$(TLS_C))
SCRIPTS := $(wildcard src/*/*.sh)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
PROGS := $(addprefix $(BUILD)/bin/,$(notdir $(basename $(MAIN_C))))
TLS_PROGS := $(addprefix $(BUILD)/bin/,$(notdir $(basename $(TLS_MAIN_C))))
SCRIPT_BINS := $(addprefix $(BUILD)/bin/,$(notdir $(basename $(SCRIPTS))))
UNIT_C := $(wildcard tests/unit/t_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_C))
MANPAGES := $(wildcard doc/man/*.[1-8])

LIBQM := $(BUILD)/libqm.a
LIBQTLS := $(BUILD)/libqtls.a

.PHONY: all check unit e2e run install clean deps fmt lint bench fuzz torture
all: $(PROGS) $(TLS_PROGS) $(SCRIPT_BINS) $(UNIT_BINS)

# Configuration compiled in; rewritten only when it changes.
$(BUILD)/gen/auto.h: FORCE
	@mkdir -p $(@D)
	@printf '#define AUTO_PREFIX "%s"\n#define AUTO_SPLIT %s\n' \
		'$(PREFIX)' '$(SPLIT)' > $@.new
	@cmp -s $@.new $@ && rm -f $@.new || mv -f $@.new $@
FORCE:

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/auto.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/src/tls/%.o: src/tls/%.c $(BUILD)/gen/auto.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SSL_CFLAGS) -c -o $@ $<

$(LIBQM): $(call obj,$(LIB_C))
	@rm -f $@
	ar rcs $@ $^

$(LIBQTLS): $(call obj,$(TLSLIB_C))
	@rm -f $@
	ar rcs $@ $^

# Programs started for every message or connection are linked statically
# against musl when musl-gcc is there (Debian: musl-tools). glibc's
# start-up executes CPUID some 80 times, and on a VM where CPUID traps to
# the hypervisor that is about 1 ms of CPU per start, three starts per
# message on the SMTP path (bench/README.md); a static musl program starts
# in a fifth of the time. MUSL=0 turns this off, MUSL=1 makes a failed
# probe an error; SAN=1 never uses it (the sanitizers need glibc). Only
# programs that need nothing glibc alone has may be listed: no NSS
# (getpwnam, getaddrinfo), no res_n* (src/remote/dns.c), no crypt(3)
# hashes, no OpenSSL. Error texts stay the same (lib/errstr.c).
MUSL ?= auto
MUSL_CC ?= musl-gcc
MUSL_PROGS := qmail-smtpd qmail-queue qmail-local qmail-rsmtp qmail-qmqpd \
	qmail-ofmipd qmail-pop3d qmail-authup qmail-reup checknotroot
MUSL_SKIP_C := src/remote/dns.c
MUSL_SETUP :=
ifneq ($(SAN),1)
ifneq ($(MUSL),0)
MUSL_SETUP := $(shell sh scripts/musl.sh $(MUSL_CC) $(BUILD)/musl)
ifeq ($(MUSL)$(MUSL_SETUP),1)
$(error MUSL=1, but scripts/musl.sh found no working musl-gcc)
endif
endif
endif
MUSL_LIBDIR := $(word 1,$(MUSL_SETUP))
MUSL_CDB := $(word 2,$(MUSL_SETUP))
LIBQM_MUSL := $(BUILD)/musl/libqm.a
musl_obj = $(patsubst %.c,$(BUILD)/musl/obj/%.o,$(1))
is_musl = $(and $(MUSL_SETUP),$(filter $(notdir $(basename $(1))),$(MUSL_PROGS)))

$(BUILD)/musl/obj/%.o: %.c $(BUILD)/gen/auto.h
	@mkdir -p $(@D)
	$(MUSL_CC) $(ALL_CFLAGS) -I$(BUILD)/musl/inc -c -o $@ $<

$(LIBQM_MUSL): $(call musl_obj,$(filter-out $(MUSL_SKIP_C),$(LIB_C)))
	@rm -f $@
	ar rcs $@ $^

define prog_rule
ifneq ($(call is_musl,$(1)),)
$(BUILD)/bin/$(notdir $(basename $(1))): $(call musl_obj,$(1)) $(LIBQM_MUSL)
	@mkdir -p $$(@D)
	$(MUSL_CC) $(HARDEN) -static-pie -nostartfiles -Wl,-Bstatic \
		-Wl,--no-dynamic-linker -Wl,-z,relro -Wl,-z,now -o $$@ \
		$(MUSL_LIBDIR)/rcrt1.o $(MUSL_LIBDIR)/crti.o \
		$$(shell $(MUSL_CC) -print-file-name=crtbeginS.o) \
		$$< $(LIBQM_MUSL) $(MUSL_CDB) \
		$$(shell $(MUSL_CC) -print-file-name=crtendS.o) \
		$(MUSL_LIBDIR)/crtn.o
else
$(BUILD)/bin/$(notdir $(basename $(1))): $(call obj,$(1)) $(LIBQM)
	@mkdir -p $$(@D)
	$$(CC) $(ALL_LDFLAGS) -o $$@ $$< $(LIBQM) $(LIBS)
endif
endef
$(foreach m,$(MAIN_C),$(eval $(call prog_rule,$(m))))

define tlsprog_rule
$(BUILD)/bin/$(notdir $(basename $(1))): $(call obj,$(1)) $(LIBQTLS) $(LIBQM)
	@mkdir -p $$(@D)
	$$(CC) $(ALL_LDFLAGS) -o $$@ $$< $(LIBQTLS) $(LIBQM) $(SSL_LIBS) $(LIBS)
endef
$(foreach m,$(TLS_MAIN_C),$(eval $(call tlsprog_rule,$(m))))

define script_rule
$(BUILD)/bin/$(notdir $(basename $(1))): $(1) $(BUILD)/gen/auto.h
	@mkdir -p $$(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@SPLIT@|$(SPLIT)|g' $$< > $$@.tmp
	chmod 755 $$@.tmp
	mv -f $$@.tmp $$@
endef
$(foreach s,$(SCRIPTS),$(eval $(call script_rule,$(s))))

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIBQM)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(LIBQM) $(LIBS)

-include $(shell find $(BUILD)/obj $(BUILD)/musl/obj -name '*.d' 2>/dev/null)

deps:
	@sh scripts/deps.sh

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) e2e

unit: $(UNIT_BINS)
	@sh tests/unit/run.sh $(BUILD)/tests

e2e: all
	QM_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

run: deps
	$(MAKE) all
	QM_BUILD=$(abspath $(BUILD)) sh scripts/run-instance.sh $(INSTANCE)

bench: deps
	$(MAKE) all
	QM_BUILD=$(abspath $(BUILD)) $(PYTHON) bench/bench.py $(BENCH_ARGS)

torture: deps
	$(MAKE) all
	QM_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/torture/torture.py $(TORTURE_ARGS)

FUZZ_SECONDS ?= 60
fuzz:
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# INSTALL_ACCOUNT=name: every qmail account is that one (a test install).
install: all
	sh scripts/install.sh '$(BUILD)' '$(DESTDIR)' '$(PREFIX)' '$(SPLIT)' \
		'$(INSTALL_ACCOUNT)'

fmt:
	clang-format -i $(ALL_C) $(TLS_C) $(wildcard src/*/*.h) $(wildcard tests/unit/*.c)

# cppcheck and clang-tidy with the build's preprocessor flags.
lint: deps $(BUILD)/gen/auto.h
	@sh scripts/lint.sh -std=c17 $(FEATURES) -Isrc -I$(BUILD)/gen \
		$(CDB_CFLAGS) $(SSL_CFLAGS)

clean:
	rm -rf build build-san build-fuzz

# mod_bbauth: build, test and demo.
#   make            build the module (.build/mod_bbauth.so) with apxs
#   make deb        the Debian package: libapache2-mod-bbauth_<version>_<arch>.deb here (then: apt install ./<it>)
#   make install    install it with the Debian .load/.conf files (then: a2enmod bbauth) and bbauth-keygen
#   make test       unit tests (cmocka) and integration tests (pytest, real Apache, fake Bitbucket)
#   make demo       run the module in front of a sample package mirror and the bundled fake Bitbucket
#   make bench      throughput and latency against a real Apache (wrk), callgrind: tests/bench/results.md; calls to
#                   Bitbucket per operation and an outage: tests/bench/results-bitbucket.md
#   make soak       60 s of mixed load at 64 connections: no wrong answer, no error, flat memory
#   make test-asan  unit and integration tests with the core and the module built with ASan and UBSan
#   make fuzz       libFuzzer on every parser of the core, FUZZ_SECONDS (default 60) each, from tests/fuzz/<target>/
#   make fuzz-smoke the same for FUZZ_SMOKE_SECONDS (default 10) each, from the committed seeds only (CI)

APXS    ?= apxs
SBINDIR ?= /usr/local/sbin
# Where httpd looks for modules (Debian: /usr/lib/apache2/modules); DESTDIR goes before it, as before SBINDIR.
MODULES_DIR = $(shell $(APXS) -q LIBEXECDIR)
PYTHON  ?= /usr/bin/python3
BUILD   := .build
PYTEST_ARGS ?=
# The version is written once, on the first line of debian/changelog ("libapache2-mod-bbauth (0.1.0) ..."); the
# module gets it as MOD_BBAUTH_VERSION (apxs runs its compiler through one more shell, hence the two quotings).
VERSION := $(shell sed -n '1s/^[^ ]* (\([0-9A-Za-z.+~-]*\)).*/\1/p' debian/changelog)
CC_VERSION   := -DMOD_BBAUTH_VERSION='"$(VERSION)"'
APXS_VERSION := -DMOD_BBAUTH_VERSION='\"$(VERSION)\"'
ifeq ($(VERSION),)
$(error debian/changelog: no version on its first line)
endif

CORE_SRC := $(sort $(wildcard mod_bbauth/bb_*.c))
GLUE_SRC := $(sort $(wildcard mod_bbauth/mod_bbauth*.c))
HEADERS  := $(wildcard mod_bbauth/*.h)
CORE_OBJ := $(CORE_SRC:mod_bbauth/%.c=$(BUILD)/core/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)
UNIT_HDR := $(wildcard tests/unit/*.h)

# Only evaluated by the targets that compile, so that `make deps` works before the -dev packages are there.
APR_CFLAGS   = $(shell apr-1-config --cflags --cppflags --includes) $(shell apu-1-config --includes)
APR_LIBS     = $(shell apr-1-config --link-ld --libs) $(shell apu-1-config --link-ld)
DEPS_CFLAGS  = $(shell pkg-config --cflags libcurl openssl jansson)
DEPS_LIBS    = $(shell pkg-config --libs libcurl openssl jansson)
WARNINGS     := -Wall -Wextra -Wno-unused-parameter -Wformat=2 -Wformat-security -Wshadow -Wstrict-prototypes
OPT_CFLAGS   ?= -O2 -g
SAN_FLAGS    ?=

# Keep the core objects: the unit tests and the next link reuse them.
.SECONDARY: $(CORE_OBJ)

.PHONY: all module install unit integration test demo bench deps clean fuzz test-asan soak fuzz-smoke fuzz-run \
        deb test-package

all: module

module: $(BUILD)/mod_bbauth.so

deps:
	build/deps.sh

# apxs/libtool leave their objects beside the sources (ignored by git); the finished module is copied out.
$(BUILD)/mod_bbauth.so: $(CORE_SRC) $(GLUE_SRC) $(HEADERS) debian/changelog
	@mkdir -p $(BUILD)
	$(APXS) -c -o mod_bbauth.la \
	  -Wc,"$(WARNINGS) -Werror $(OPT_CFLAGS) $(SAN_FLAGS) $(DEPS_CFLAGS) $(APXS_VERSION)" -Wl,"$(SAN_FLAGS)" \
	  $(GLUE_SRC) $(CORE_SRC) $(DEPS_LIBS)
	cp .libs/mod_bbauth.so $@

$(BUILD)/core/%.o: mod_bbauth/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Werror $(OPT_CFLAGS) $(SAN_FLAGS) $(APR_CFLAGS) $(DEPS_CFLAGS) -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c $(UNIT_HDR) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) $(OPT_CFLAGS) $(SAN_FLAGS) -Imod_bbauth $(APR_CFLAGS) $(DEPS_CFLAGS) -o $@ $< $(CORE_OBJ) \
	  $(APR_LIBS) $(DEPS_LIBS) -lcmocka $(SAN_FLAGS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: module
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/fakebb
	BBAUTH_MODULE=$(CURDIR)/$(BUILD)/mod_bbauth.so $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

# The README's commands install what they need first (build/deps.sh: idempotent, a second when all is there), or
# stop at once naming the command to run; the sub-make then finds the -dev packages it reads the flags from.
test:
	build/deps.sh
	$(MAKE) unit integration

demo: deps module
	$(PYTHON) build/demo.py

bench:
	build/deps.sh --bench
	$(MAKE) module
	BBAUTH_MODULE=$(CURDIR)/$(BUILD)/mod_bbauth.so $(PYTHON) tests/bench/bench.py
	BBAUTH_MODULE=$(CURDIR)/$(BUILD)/mod_bbauth.so $(PYTHON) tests/bench/many_sessions.py
	BBAUTH_MODULE=$(CURDIR)/$(BUILD)/mod_bbauth.so $(PYTHON) tests/bench/bitbucket.py

soak:
	build/deps.sh --bench
	$(MAKE) module
	BBAUTH_MODULE=$(CURDIR)/$(BUILD)/mod_bbauth.so $(PYTHON) tests/bench/soak.py

# Sanitizers: the core, the unit tests and the module built again with ASan and UBSan in $(ASAN_BUILD) (not with
# apxs, which would leave its objects beside the sources), then the unit tests and the whole integration suite with
# that module in apache2, the ASan runtime preloaded. A report (logs/sanitizer.* in an Apache's ServerRoot) fails
# the test whose Apache wrote it (tests/integration/apache.py); any report fails a unit test.
ASAN_BUILD    := .build-asan
ASAN_CC       ?= gcc
ASAN_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_CFLAGS   := -O1 -g -fPIC $(ASAN_SAN)
ASAN_CORE_OBJ := $(CORE_SRC:mod_bbauth/%.c=$(ASAN_BUILD)/core/%.o)
ASAN_GLUE_OBJ := $(GLUE_SRC:mod_bbauth/%.c=$(ASAN_BUILD)/glue/%.o)
ASAN_UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(ASAN_BUILD)/unit/%)
# httpd keeps pools until exit and libcurl/OpenSSL keep global state: leak reports there would be noise.
ASAN_OPTIONS_APACHE := detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=@LOGS@/sanitizer
UBSAN_OPTIONS_APACHE := print_stacktrace=1:halt_on_error=1:log_path=@LOGS@/sanitizer
ASAN_APACHE_ENV = {"LD_PRELOAD": "$(shell $(ASAN_CC) -print-file-name=libasan.so)", "ASAN_OPTIONS": \
  "$(ASAN_OPTIONS_APACHE)", "UBSAN_OPTIONS": "$(UBSAN_OPTIONS_APACHE)"}
HTTPD_CFLAGS   = -I$(shell $(APXS) -q INCLUDEDIR) $(shell $(APXS) -q EXTRA_CPPFLAGS)
.SECONDARY: $(ASAN_CORE_OBJ) $(ASAN_GLUE_OBJ)

$(ASAN_BUILD)/core/%.o: mod_bbauth/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(WARNINGS) -Werror $(ASAN_CFLAGS) $(APR_CFLAGS) $(DEPS_CFLAGS) -c -o $@ $<

$(ASAN_BUILD)/glue/%.o: mod_bbauth/%.c $(HEADERS) debian/changelog
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(WARNINGS) -Werror $(ASAN_CFLAGS) $(HTTPD_CFLAGS) $(APR_CFLAGS) $(DEPS_CFLAGS) $(CC_VERSION) -c -o $@ $<

$(ASAN_BUILD)/mod_bbauth.so: $(ASAN_GLUE_OBJ) $(ASAN_CORE_OBJ)
	$(ASAN_CC) -shared $(ASAN_SAN) -o $@ $^ $(DEPS_LIBS)

$(ASAN_BUILD)/unit/%: tests/unit/%.c $(UNIT_HDR) $(ASAN_CORE_OBJ)
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(WARNINGS) $(ASAN_CFLAGS) -Imod_bbauth $(APR_CFLAGS) $(DEPS_CFLAGS) -o $@ $< $(ASAN_CORE_OBJ) \
	  $(APR_LIBS) $(DEPS_LIBS) -lcmocka

test-asan: $(ASAN_BUILD)/mod_bbauth.so $(ASAN_UNIT_BIN)
	@set -e; for t in $(ASAN_UNIT_BIN); do echo "== $$t"; \
	  ASAN_OPTIONS=halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $$t; done
	BBAUTH_MODULE=$(CURDIR)/$(ASAN_BUILD)/mod_bbauth.so BBAUTH_APACHE_ENV='$(ASAN_APACHE_ENV)' \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

# Fuzzing (clang's libFuzzer with ASan and UBSan): the core is built again, apart, in $(FUZZ_BUILD). Each target
# runs FUZZ_SECONDS from its seeds (tests/fuzz/<target>/, never written to) and a working corpus in
# $(FUZZ_BUILD)/corpus/<target>/; a crash stops `make fuzz` and leaves the input in $(FUZZ_BUILD)/crash-<target>-*.
FUZZ_BUILD   := .build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_OBJ     := $(CORE_SRC:mod_bbauth/%.c=$(FUZZ_BUILD)/core/%.o)
.SECONDARY: $(FUZZ_OBJ)

$(FUZZ_BUILD)/core/%.o: mod_bbauth/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARNINGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(APR_CFLAGS) $(DEPS_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(WARNINGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -Imod_bbauth $(APR_CFLAGS) $(DEPS_CFLAGS) \
	  -o $@ $< $(FUZZ_OBJ) $(APR_LIBS) $(DEPS_LIBS)

# The working corpus of `make fuzz` (FUZZ_CORPUS=corpus) grows from run to run; the smoke's (corpus-smoke) starts
# empty each time, so that it tries the committed seeds and what a few seconds find from them, the same on any machine.
FUZZ_CORPUS ?= corpus
FUZZ_SMOKE_SECONDS ?= 10

fuzz:
	build/deps.sh --bench
	$(MAKE) fuzz-run

# CI: a crash in a parser is caught at the commit that adds it; about 7 targets x 10 s, plus the build.
fuzz-smoke:
	build/deps.sh
	rm -rf $(FUZZ_BUILD)/corpus-smoke
	$(MAKE) fuzz-run FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) FUZZ_CORPUS=corpus-smoke

fuzz-run: $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/$(FUZZ_CORPUS)/$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	    $(FUZZ_BUILD)/$(FUZZ_CORPUS)/$$t tests/fuzz/$$t 2>$(FUZZ_BUILD)/fuzz_$$t.log \
	    || { tail -n 60 $(FUZZ_BUILD)/fuzz_$$t.log; echo "fuzz_$$t: crash (input: $(FUZZ_BUILD)/crash-$$t-*)"; exit 1; }; \
	  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+.*DONE)' $(FUZZ_BUILD)/fuzz_$$t.log || true; \
	done

# The Debian source and binary packages (debian/), checked by lintian; the .deb is copied here.
deb:
	build/deps.sh --deb
	build/deb.sh

# The package installed into this machine's system Apache, used and purged (tests/package: root, BBAUTH_PACKAGE_TEST=1;
# .ci/run's disposable machine). It leaves /etc/apache2 and the package database as it found them.
test-package: deb
	BBAUTH_PACKAGE_TEST=1 $(PYTHON) -m pytest -q -p no:cacheprovider tests/package

install: module
	install -d $(DESTDIR)$(MODULES_DIR)
	$(APXS) -i -S LIBEXECDIR=$(DESTDIR)$(MODULES_DIR) -n bbauth $(BUILD)/mod_bbauth.so
	install -D -m 0644 conf/bbauth.load $(DESTDIR)/etc/apache2/mods-available/bbauth.load
	install -D -m 0644 conf/bbauth.conf $(DESTDIR)/etc/apache2/mods-available/bbauth.conf
	install -D -m 0755 build/bbauth-keygen $(DESTDIR)$(SBINDIR)/bbauth-keygen

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) libapache2-mod-bbauth_*.deb mod_bbauth/*.lo mod_bbauth/*.slo mod_bbauth/*.o mod_bbauth/*.la mod_bbauth/.libs mod_bbauth.la .libs

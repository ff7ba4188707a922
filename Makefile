# mod_bbauth: build, test and demo.
#   make            build the module (.build/mod_bbauth.so) with apxs
#   make install    install it with the Debian .load/.conf files (then: a2enmod bbauth)
#   make test       unit tests (cmocka) and integration tests (pytest, real Apache, fake Bitbucket)
#   make demo       run the module in front of a sample package mirror and the bundled fake Bitbucket
#   make bench      throughput and latency against a real Apache (wrk)

APXS    ?= apxs
PYTHON  ?= /usr/bin/python3
BUILD   := .build
PYTEST_ARGS ?=

CORE_SRC := $(sort $(wildcard mod_bbauth/bb_*.c))
GLUE_SRC := $(sort $(wildcard mod_bbauth/mod_bbauth*.c))
HEADERS  := $(wildcard mod_bbauth/*.h)
CORE_OBJ := $(CORE_SRC:mod_bbauth/%.c=$(BUILD)/core/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

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

.PHONY: all module install unit integration test demo bench deps clean

all: module

module: $(BUILD)/mod_bbauth.so

deps:
	build/deps.sh

# apxs/libtool leave their objects beside the sources (ignored by git); the finished module is copied out.
$(BUILD)/mod_bbauth.so: $(CORE_SRC) $(GLUE_SRC) $(HEADERS)
	@mkdir -p $(BUILD)
	$(APXS) -c -o mod_bbauth.la \
	  -Wc,"$(WARNINGS) -Werror $(OPT_CFLAGS) $(SAN_FLAGS) $(DEPS_CFLAGS)" -Wl,"$(SAN_FLAGS)" \
	  $(GLUE_SRC) $(CORE_SRC) $(DEPS_LIBS)
	cp .libs/mod_bbauth.so $@

$(BUILD)/core/%.o: mod_bbauth/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -Werror $(OPT_CFLAGS) $(SAN_FLAGS) $(APR_CFLAGS) $(DEPS_CFLAGS) -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c tests/unit/unit.h tests/unit/fake_cache.h $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) $(OPT_CFLAGS) $(SAN_FLAGS) -Imod_bbauth $(APR_CFLAGS) $(DEPS_CFLAGS) -o $@ $< $(CORE_OBJ) \
	  $(APR_LIBS) $(DEPS_LIBS) -lcmocka $(SAN_FLAGS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: module
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/fakebb
	BBAUTH_MODULE=$(CURDIR)/$(BUILD)/mod_bbauth.so $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

test: unit integration

demo: deps module
	$(PYTHON) build/demo.py

bench: module
	build/deps.sh --bench
	$(PYTHON) tests/bench/bench.py

install: module
	$(APXS) -i -n bbauth $(BUILD)/mod_bbauth.so
	install -m 0644 conf/bbauth.load $(DESTDIR)/etc/apache2/mods-available/bbauth.load
	install -m 0644 conf/bbauth.conf $(DESTDIR)/etc/apache2/mods-available/bbauth.conf

clean:
	rm -rf $(BUILD) mod_bbauth/*.lo mod_bbauth/*.slo mod_bbauth/*.o mod_bbauth/*.la mod_bbauth/.libs mod_bbauth.la .libs

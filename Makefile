# burry and bysu. `make` builds bin/burry; `make test` installs what is
# missing, builds and runs every test (also under ASan+UBSan); `make demo`
# runs a backup and restore against throwaway local servers; `make bench`
# runs the benchmarks; `make install` installs the programs and man pages.
# SANITIZE=address,undefined builds into build/asan.

CC      ?= cc
VERSION := 0.1.0
PKGS    := libarchive jansson libcrypto libcurl inih yajl zlib
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -Wvla
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DBURRY_VERSION='"$(VERSION)"' $(WARN) $(CFLAGS) \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -Isrc/core
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lzookeeper_st -lpthread -lm

ifneq ($(SANITIZE),)
  BUILD  ?= build/asan
  ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=$(SANITIZE)
  BINDIR ?= $(BUILD)/bin
else
  BUILD  ?= build/release
  BINDIR ?= bin
endif

LIB_SRC  := $(wildcard src/core/*.c src/sources/*.c src/stores/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := src/cli/burry.c
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all clean test test-fast unit demo bench setup asan install
PROGRAMS := $(BINDIR)/burry $(if $(wildcard src/cli/bysu.c),$(BINDIR)/bysu)
all: $(PROGRAMS) $(UNIT_BIN)

$(BUILD)/%.o: %.c $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libburry.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BINDIR)/burry: $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libburry.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libburry.a $(LDLIBS)

$(BINDIR)/bysu: $(BUILD)/src/cli/bysu.o $(BUILD)/libburry.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/src/cli/bysu.o $(BUILD)/libburry.a $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h $(BUILD)/libburry.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libburry.a $(LDLIBS)

asan:
	$(MAKE) SANITIZE=address,undefined all

setup:
	scripts/setup.sh

# The README's test command: installs what is missing, builds both
# variants, runs the suite on each and prints "N passed, N failed".
test: setup
	$(MAKE) all
	$(MAKE) asan
	tests/run.sh

demo: setup all
	scripts/demo.sh

bench: setup all
	bench/run.sh

# Installs the programs and man pages (PREFIX=/usr/local, DESTDIR for
# packaging); the systemd units in packaging/systemd/ are copied by hand.
PREFIX ?= /usr/local
install: $(PROGRAMS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 docs/burry.1 docs/bysu.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/bysu.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/

clean:
	rm -rf build bin

# kiln: one non-recursive Makefile. `make` builds everything into build/:
# the CLI at build/kiln, plugins at build/plugins/*.so. `make test` and
# `make run` install missing Debian packages first (apt-get; run as root),
# so on a fresh machine they are the only two commands needed.

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
libdir   ?= $(PREFIX)/lib
bindir   ?= $(PREFIX)/bin
includedir ?= $(PREFIX)/include
PLUGINDIR := $(libdir)/kiln/plugins-2

CC       ?= cc
RE2C     ?= re2c
PKGS     := vips gmodule-2.0 libcjson sqlite3 libpq libcurl libcrypto libjpeg
OPT      ?= -O2
SAN      ?=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow \
            -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined,float-cast-overflow
endif
WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARN) $(SANFLAGS) \
             -Isdk/include $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)

.DEFAULT_GOAL := all
# Every plugin folder is shipped; the embedded defaults enable all but
# the pixel backends (backend-*: loading MagickCore costs every `kiln run`
# 12 ms, so a deployment enables it when a service names it; `kiln run
# --backend NAME` does so itself). The op definitions (ops-*) load first,
# so that backends enabled after them can implement their ops.
ALL_PLUGINS := $(sort $(notdir $(wildcard plugins/*)) \
               $(addprefix storage-,$(notdir $(wildcard storage-plugins/*))))
SHIPPED_PLUGINS := $(filter ops-%,$(ALL_PLUGINS)) \
                   $(filter-out ops-% backend-%,$(ALL_PLUGINS))

include mk/deps.mk

# ------------------------------------------------------------- the CLI
CORE_SRC := $(wildcard base/*.c) $(filter-out core/main.c,$(wildcard core/*.c)) \
            $(wildcard server/*.c) $(wildcard dsl/*.c) $(wildcard kernels/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(BUILD)/obj/core/main.o

# Where libvips keeps its loadable modules (core/vips_modules.c opens the
# ones kiln uses from there).
VIPS_MODULE_DIR := $(shell pkg-config --variable=libdir vips 2>/dev/null)/vips-modules-$(shell pkg-config --modversion vips 2>/dev/null | cut -d. -f1-2)
DEFS := -DKILN_PLUGIN_DIR='"$(PLUGINDIR)"' \
        -DKILN_SHIPPED_PLUGINS='"$(subst $(eval) ,$(shell printf ','),$(SHIPPED_PLUGINS))"' \
        -DKILN_VIPS_MODULE_DIR='"$(VIPS_MODULE_DIR)"'

all: $(BUILD)/kiln plugins test-plugins $(BUILD)/pkgconfig/kiln-plugin.pc

# The plugin directory and shipped list are compiled into config.o: rebuild
# it whenever they change (make install PREFIX=... after a plain make).
$(BUILD)/defs.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(DEFS)' | cmp -s - $@ || echo '$(DEFS)' > $@
$(BUILD)/obj/core/config.o $(BUILD)/obj/core/vips_modules.o: $(BUILD)/defs.stamp
FORCE:

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC      $<"
	@$(CC) $(ALL_CFLAGS) $(DEFS) -c $< -o $@

$(BUILD)/libkiln-core.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kiln: $(CLI_OBJ) $(BUILD)/libkiln-core.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -ldl -lpthread -lm

include mk/plugins.mk
include mk/fuzz.mk
include mk/test.mk
include mk/chains.mk
include mk/install.mk

# ------------------------------------------------------------- lexers
LEXERS := $(wildcard dsl/*.re)
lexers:
	@for f in $(LEXERS); do \
	  echo "re2c $$f"; \
	  $(RE2C) -W --no-generation-date --no-version $$f -o $${f%.re}.c || exit 1; \
	done

# Regenerates every lexer into a scratch file and compares it with the
# committed one: the generated C must be what the .re says.
check-lexers:
	@ok=1; for f in $(LEXERS); do \
	  tmp=$$(mktemp); \
	  $(RE2C) -W --no-generation-date --no-version $$f -o $$tmp || exit 1; \
	  if ! diff -q <(sed '/^#line/d' $$tmp) <(sed '/^#line/d' $${f%.re}.c) >/dev/null; then \
	    echo "FAIL lexers: $${f%.re}.c is not what re2c generates from $$f (run make lexers)"; ok=0; \
	  else echo "ok   lexers: $${f%.re}.c matches $$f"; fi; rm -f $$tmp; \
	done; [ $$ok = 1 ]

run: deps all
	@bash examples/tour.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all lexers check-lexers run clean FORCE
SHELL := /bin/bash

-include $(shell find $(BUILD)/obj $(BUILD)/pobj -name '*.d' 2>/dev/null)

# Benchmarks: figures for the notes, next to the peers each issue names.
bench: bench-deps all $(BUILD)/bench/queue
	@bash bench/run.sh

# The job store alone (bench/queue.c), against the core library.
$(BUILD)/bench/queue: bench/queue.c $(BUILD)/libkiln-core.a
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -o $@ $< $(BUILD)/libkiln-core.a \
	    $(LDFLAGS) $(PKG_LIBS) -ldl -lpthread -lm

.PHONY: bench

# Before/after pictures for docs/ops.md, from the examples (committed).
docs-images: all
	@bash examples/docs-images.sh

.PHONY: docs-images

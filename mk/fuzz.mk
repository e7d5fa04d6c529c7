# Fuzzing (tests/fuzz/README.md): libFuzzer harnesses for the compiler, the
# value lexer, the configuration loader, the HTTP API and source probing.
#  - `make fuzz` builds them with clang (libFuzzer, ASan, UBSan) into
#    $(FUZZ_BUILD)/, with the core and the two plugins they load compiled
#    there too (instrumented, apart from build/ and build-asan/), runs each
#    for FUZZ_SECONDS over a copy of its corpus, and merges the inputs that
#    found new coverage back into tests/fuzz/corpus/NAME (tests/fuzz/run.sh).
#  - The same harness files, linked by gcc with a small driver (replay.c)
#    against $(BUILD)/libkiln-core.a, are test programs: test-build builds
#    them into $(BUILD)/tests/fuzz/ and tests/exec/fuzz_replay.sh replays
#    every committed corpus, on the normal and on the ASan build.
FUZZ_HARNESSES := compile lexer config api probe
FUZZ_SECONDS   ?= 60
FUZZ_ONLY      ?= $(FUZZ_HARNESSES)
FUZZ_BUILD     ?= build-fuzz
FUZZ_CC        ?= clang

# ------------------------------------------------------------- replay
FUZZ_REPLAY_BINS := $(FUZZ_HARNESSES:%=$(BUILD)/tests/fuzz/replay-%)
TEST_BINS += $(FUZZ_REPLAY_BINS)

$(BUILD)/tests/fuzz/replay-%: $(BUILD)/obj/tests/fuzz/fuzz_%.o \
                              $(BUILD)/obj/tests/fuzz/fuzz_common.o \
                              $(BUILD)/obj/tests/fuzz/replay.o \
                              $(BUILD)/libkiln-core.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -ldl -lpthread -lm

# ------------------------------------------------------------- libFuzzer
# UBSan checks are recoverable here so that tests/fuzz/guards-ubsan.supp
# can step around a known defect; run.sh sets halt_on_error=1, so any
# other report still stops the run.
FUZZ_SAN    := -fsanitize=address,undefined -fsanitize-recover=undefined \
               -fno-omit-frame-pointer
# No -Werror: clang warns where gcc does not, and a warning must not stop
# a fuzzing run (the gcc builds keep the code warning-free).
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE -O1 -g $(FUZZ_SAN) \
               -fsanitize=fuzzer-no-link \
               $(filter-out -Werror -Wno-format-truncation,$(WARN)) \
               -Isdk/include $(PKG_CFLAGS) -MMD -MP
FUZZ_CORE_OBJ := $(CORE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BINS     := $(FUZZ_HARNESSES:%=$(FUZZ_BUILD)/fuzz_%)
# The plugins the harnesses load, instrumented so their code counts too.
FUZZ_SOS := $(FUZZ_BUILD)/plugins/ops-vips.so \
            $(FUZZ_BUILD)/plugins/storage-local.so

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC [fuzz] $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEFS) -c $< -o $@

$(FUZZ_BUILD)/pobj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC [fuzz so] $<"
	@$(FUZZ_CC) $(filter-out -D_GNU_SOURCE,$(FUZZ_CFLAGS)) -fPIC \
	    -fvisibility=hidden $(shell pkg-config --cflags fontconfig 2>/dev/null) \
	    -c $< -o $@

$(FUZZ_BUILD)/libkiln-core.a: $(FUZZ_CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/plugins/ops-vips.so: \
    $(patsubst %.c,$(FUZZ_BUILD)/pobj/%.o,$(wildcard plugins/ops-vips/*.c) \
                                          $(wildcard kernels/*.c))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -shared $(FUZZ_SAN) -o $@ $^ $(PLUGIN_LIBS)

$(FUZZ_BUILD)/plugins/storage-local.so: \
    $(patsubst %.c,$(FUZZ_BUILD)/pobj/%.o,$(wildcard storage-plugins/local/*.c))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -shared $(FUZZ_SAN) -o $@ $^ $(PLUGIN_LIBS)

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o \
                      $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_common.o \
                      $(FUZZ_BUILD)/libkiln-core.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) \
	    -ldl -lpthread -lm

fuzz-build: $(FUZZ_BINS) $(FUZZ_SOS)

# fuzz-deps (mk/deps.mk) installs DEB_FUZZ first. FUZZ_SECONDS per
# harness (FUZZ_SECONDS_<name> overrides one, e.g. FUZZ_SECONDS_api=900);
# FUZZ_ONLY="compile api" runs a subset.
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory -j2 fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_ONLY)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-build fuzz-clean

-include $(shell find $(FUZZ_BUILD)/obj $(FUZZ_BUILD)/pobj -name '*.d' 2>/dev/null)

# Tests: CUnit unit tests, golden compile tests, executed tests against
# ImageMagick, examples. `make test` runs the whole suite on the normal
# build, then again on an ASan+UBSan build in build-asan/, then checks the
# committed re2c output. tests/run.sh prints one summary line.
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)

# ops-vips' reductions are tested directly (tests/unit/test_reducev.c): its
# libvips wrappers, over the kernels in libkiln-core.a.
UNIT_PLUGIN_OBJ := $(BUILD)/pobj/plugins/ops-vips/reducev.o \
                   $(BUILD)/pobj/plugins/ops-vips/reduceh.o

$(BUILD)/tests/unit: $(UNIT_OBJ) $(UNIT_PLUGIN_OBJ) $(BUILD)/libkiln-core.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcunit -ldl -lpthread -lm

# A plugin's plugin.mk may add test programs of its own (e.g. a signer
# checked against published vectors) to TEST_BINS; tests/exec scripts run
# them from $(BUILD)/tests/.
test-build: all $(BUILD)/tests/unit $(TEST_BINS)

# The suite on one build directory.
check: test-build
	@bash tests/run.sh $(BUILD)

test: deps
	@$(MAKE) --no-print-directory -j2 test-build
	@$(MAKE) --no-print-directory -j2 BUILD=build-asan SAN=1 OPT=-O1 test-build
	@status=0; sum=$$(mktemp); \
	$(MAKE) --no-print-directory check-lexers || { status=1; echo "0 1 0" >>$$sum; }; \
	KILN_SUMMARY=$$sum bash tests/run.sh build || status=1; \
	KILN_SUMMARY=$$sum bash tests/run.sh build-asan || status=1; \
	awk '{p+=$$1; f+=$$2; s+=$$3} END {print ""; \
	  print "total: " p " passed, " f " failed, " s " skipped"}' $$sum; \
	cat $$sum.failed 2>/dev/null; \
	rm -f $$sum $$sum.failed; exit $$status

.PHONY: test test-build check

# Property tests of op chains (tests/chains/): random valid requests over
# sources of every kind, run at every -O level and checked against what
# the compiler inferred. `make test` runs a fixed set of seeds (through
# tests/exec/chains.sh); `make check-chains SEED=... N=...` runs as many
# generated requests as asked, with a fresh seed unless SEED is given.
$(BUILD)/tests/imgcheck: tests/chains/imgcheck.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -o $@ $< $(LDFLAGS) \
	    $(PKG_LIBS) -lm

test-build: $(BUILD)/tests/imgcheck

SEED ?=
N    ?= 500
check-chains: deps test-build
	@python3 tests/chains/chains.py run --build $(BUILD) \
	    $(if $(SEED),--seed $(SEED)) --requests $(N)

.PHONY: check-chains

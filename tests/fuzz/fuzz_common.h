/*
 * What the libFuzzer harnesses in tests/fuzz share: the two entry points
 * libFuzzer (or the replay driver, replay.c) calls, libvips start-up, the
 * plugin directory and an engine built once per process, and a scratch
 * directory removed at exit. Harness code only: nothing here ships.
 */
#ifndef KILN_TESTS_FUZZ_FUZZ_COMMON_H
#define KILN_TESTS_FUZZ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "../../core/kiln.h"

/* libFuzzer's entry points. A harness defines both; the replay driver
 * calls the first once, then the second once per corpus file. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Starts libvips once and silences its warnings (a damaged file makes
 * many; they are not what the harnesses look for). Aborts on failure:
 * a harness without libvips would find nothing. */
void fuzz_vips_init(void);

/* The directory the built plugins are in: $KILN_PLUGIN_DIR, else
 * "plugins" beside the binary (build-fuzz/plugins for the fuzzers), else
 * "../../plugins" from it ($(BUILD)/plugins for the replay binaries in
 * $(BUILD)/tests/fuzz). Static storage. */
const char *fuzz_plugin_dir(void);

/* A scratch directory, made on first call (under /dev/shm when it is
 * writable, so SQLite's fsyncs cost nothing; else $TMPDIR or /tmp) and
 * removed with everything in it when the process exits normally; those of
 * processes that died are swept away by the next one. Static storage.
 * Aborts when it cannot be made. */
const char *fuzz_scratch_dir(void);

/* An engine for the configuration JSON in `config` (the harness's own,
 * not fuzzed), with the storages opened when `open_storage`. Never freed:
 * it lives as long as the process. Aborts with the engine's message when
 * it cannot be built, since every input would then be wasted. */
kiln_engine *fuzz_engine_new(const char *config, bool open_storage);

/* A FILE that discards what is written (dumps and error lists are
 * formatted for the code they run, not for anyone to read). */
FILE *fuzz_devnull(void);

/* True when KILN_FUZZ_GUARDS is set: harnesses then step around known
 * defects that would stop fuzzing at once (tests/fuzz/README.md,
 * "Guards"). `make fuzz` and the corpus replay set it; a defect's
 * reproducer (crash-*) replays without it, so it fails until fixed. */
bool fuzz_guards(void);

/* Prints a harness invariant that does not hold and aborts, so libFuzzer
 * and the replay both report it as a crash with this message. */
void fuzz_fail(const char *fmt, ...) KILN_PRINTF(1, 2);

#endif /* KILN_TESTS_FUZZ_FUZZ_COMMON_H */

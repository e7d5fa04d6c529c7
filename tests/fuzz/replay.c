/*
 * The regression replay for the fuzz harnesses: a main() that calls a
 * harness's LLVMFuzzerTestOneInput once per file of the corpus
 * directories (or files) it is given, in name order, without libFuzzer.
 * Linked with gcc against $(BUILD)/libkiln-core.a, so `make test` replays
 * every committed corpus on the normal and the ASan+UBSan builds
 * (tests/exec/fuzz_replay.sh). A defect shows as the sanitizer's report
 * and a non-zero exit; the last "replaying" line names the input.
 *
 * Usage: replay-NAME [-v] DIR|FILE...   (-v: name each input first)
 */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool replay_verbose;

/* Reads a whole file into a buffer of exactly its size (so a read past
 * the input's end shows under ASan, as under libFuzzer). */
static uint8_t *
replay_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0) {
        *size = (size_t)st.st_size;
        buf = malloc(*size > 0 ? *size : 1);
        if (buf != NULL && fread(buf, 1, *size, f) != *size) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int
replay_file(const char *path)
{
    size_t size = 0;
    uint8_t *buf = replay_read(path, &size);
    if (buf == NULL) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (replay_verbose) {
        fprintf(stderr, "replaying %s\n", path);
    }
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    return 1;
}

static int
replay_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of dir; returns how many, or -1. */
static int
replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
        if (names[n] != NULL) {
            sprintf(names[n], "%s/%s", dir, de->d_name);
            n++;
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, replay_cmp);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) &&
            replay_file(names[i]) > 0) {
            count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int
main(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        replay_verbose = true;
        first = 2;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: %s [-v] DIR|FILE...\n", argv[0]);
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    int total = 0;
    for (int i = first; i < argc; i++) {
        struct stat st;
        int n = stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)
                    ? replay_dir(argv[i])
                    : replay_file(argv[i]);
        if (n < 0) {
            return 1;
        }
        total += n;
    }
    printf("replayed %d inputs\n", total);
    return 0;
}

/*
 * Helpers the libFuzzer harnesses share (fuzz_common.h): libvips start-up,
 * where the plugins are, one engine per process, a scratch directory that
 * goes away at exit. Built into every fuzzer and every replay binary.
 */
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_scratch[512];

/* libvips warnings would flood the fuzzer's output for every damaged
 * file; the ones that matter come back as errors anyway. */
static void
fuzz_vips_log(const char *domain, GLogLevelFlags level, const char *msg,
              void *user)
{
    (void)domain;
    (void)level;
    (void)msg;
    (void)user;
}

void
fuzz_vips_init(void)
{
    static bool done;
    if (done) {
        return;
    }
    if (VIPS_INIT("kiln-fuzz") != 0) {
        fuzz_fail("cannot initialise libvips: %s", vips_error_buffer());
    }
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE,
                      fuzz_vips_log, NULL);
    done = true;
}

const char *
fuzz_plugin_dir(void)
{
    static char dir[4096];
    const char *env = getenv("KILN_PLUGIN_DIR");
    if (env != NULL && env[0] != '\0') {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    char exe[4000];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        return "build/plugins";
    }
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    snprintf(dir, sizeof dir, "%s/plugins", exe);
    if (access(dir, F_OK) != 0) {
        snprintf(dir, sizeof dir, "%s/../../plugins", exe);
    }
    return dir;
}

static int
fuzz_rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)type;
    (void)f;
    remove(path);
    return 0;
}

static void
fuzz_scratch_remove(void)
{
    if (fuzz_scratch[0] != '\0') {
        nftw(fuzz_scratch, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* Removes the scratch directories of harness processes that are gone: a
 * crash, a timeout or libFuzzer's _exit() skips the atexit handler. The
 * name holds the pid of the process that made it. */
static void
fuzz_scratch_sweep(const char *base)
{
    DIR *d = opendir(base);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long pid = 0;
        char path[600];
        if (sscanf(de->d_name, "kiln-fuzz-%ld-", &pid) != 1 || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", base, de->d_name);
        nftw(path, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

const char *
fuzz_scratch_dir(void)
{
    if (fuzz_scratch[0] != '\0') {
        return fuzz_scratch;
    }
    const char *base = "/dev/shm";
    if (access(base, W_OK) != 0) {
        base = getenv("TMPDIR");
        if (base == NULL || base[0] == '\0') {
            base = "/tmp";
        }
    }
    fuzz_scratch_sweep(base);
    snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/kiln-fuzz-%ld-XXXXXX", base,
             (long)getpid());
    if (mkdtemp(fuzz_scratch) == NULL) {
        fuzz_fail("cannot make a scratch directory under %s", base);
    }
    atexit(fuzz_scratch_remove);
    return fuzz_scratch;
}

kiln_engine *
fuzz_engine_new(const char *config, bool open_storage)
{
    kiln_config *c = NULL;
    errlist errs = {0};
    if (config_load_text(config, strlen(config), &c, &errs) != KILN_OK) {
        errlist_print(&errs, stderr);
        fuzz_fail("the harness's own configuration does not load");
    }
    errlist_free(&errs);
    kiln_engine *e = NULL;
    kiln_error err;
    err_clear(&err);
    if (engine_new_take(c, open_storage, &e, &err) != KILN_OK) {
        fuzz_fail("cannot build the engine (plugins from %s): %s: %s",
                  fuzz_plugin_dir(), err.path, err.message);
    }
    return e;
}

bool
fuzz_guards(void)
{
    static int on = -1;
    if (on < 0) {
        on = getenv("KILN_FUZZ_GUARDS") != NULL;
    }
    return on != 0;
}

FILE *
fuzz_devnull(void)
{
    static FILE *f;
    if (f == NULL) {
        f = fopen("/dev/null", "w");
        if (f == NULL) {
            fuzz_fail("cannot open /dev/null");
        }
    }
    return f;
}

void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln-fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/*
 * Unit tests for the "local" storage plugin (storage-plugins/local/),
 * driven through the built .so the way the loader drives it: dlopen, read
 * the descriptor, init() with a minimal host table defined here. Covers
 * atomic write/commit/abort, nested directories, and confinement of ".."
 * and symlinks to the storage root. main.c initialises libvips first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "kiln/plugin.h"

/* The host's own quote(), from libkiln-core (the rest of this host table
 * is the test's). */
const char *err_quote(char *out, size_t size, const char *s);

#define SL_PATH_MAX 1024

/* The settings struct of the plugin: one string, "root". */
typedef struct sl_settings {
    const char *root;
} sl_settings;

int test_storage_local_register(void);

static void *sl_so;
static const kiln_storage *sl_storage;
static void *sl_state;
static char sl_base[SL_PATH_MAX / 4]; /* mkdtemp; root/ and outside/ */
static char sl_root[SL_PATH_MAX];
static char sl_outside[SL_PATH_MAX];

/* ------------------------------------------------------------ host */

static int
sl_register_storage(kiln_plugin *self, const kiln_storage *st, kiln_error *err)
{
    (void)self;
    (void)err;
    if (st->size != sizeof(kiln_storage)) {
        return KILN_EABI;
    }
    sl_storage = st;
    return KILN_OK;
}

static int
sl_error_set(kiln_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

static int
sl_error_set_param(kiln_error *err, int code, const char *param,
                   const char *fmt, ...)
{
    va_list ap;

    err->code = code;
    snprintf(err->path, sizeof err->path, "%s", param);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

static int
sl_error_set_vips(kiln_error *err, const char *what)
{
    err->code = KILN_EVIPS;
    snprintf(err->message, sizeof err->message, "%s: %s", what,
             vips_error_buffer());
    vips_error_clear();
    return KILN_EVIPS;
}

static const kiln_host_api sl_api = {
    .size = sizeof(kiln_host_api),
    .abi_major = KILN_ABI_MAJOR,
    .abi_minor = KILN_ABI_MINOR,
    .register_storage = sl_register_storage,
    .error_set = sl_error_set,
    .error_set_param = sl_error_set_param,
    .error_set_vips = sl_error_set_vips,
    .quote = err_quote,
};

/* ------------------------------------------------------------ helpers */

static void
sl_join(char *out, const char *dir, const char *name)
{
    snprintf(out, SL_PATH_MAX, "%s/%s", dir, name);
}

static int
sl_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static bool
sl_exists(const char *dir, const char *name)
{
    char path[SL_PATH_MAX];
    struct stat sb;

    sl_join(path, dir, name);
    return lstat(path, &sb) == 0;
}

/* Entries of dir, "." and ".." aside; *n_hidden counts dot files (the
 * plugin's temporaries are ".<name>.kiln-XXXXXX"). */
static int
sl_count(const char *dir, int *n_hidden)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    *n_hidden = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        n++;
        if (e->d_name[0] == '.') {
            (*n_hidden)++;
        }
    }
    closedir(d);
    return n;
}

/* Open descriptors of this process. The libvips operation cache keeps
 * recent operations, hence their images and sources (with a dup of our
 * descriptor) alive, so it is emptied first. */
static int
sl_count_fds(void)
{
    int max = vips_cache_get_max();
    int hidden;

    vips_cache_set_max(0);
    vips_cache_set_max(max);
    return sl_count("/proc/self/fd", &hidden);
}

/* Writes a w x h PNG to `path` through the plugin; commits or aborts.
 * Returns the first failing status; err holds its message. */
static int
sl_write_png(const char *path, int w, int h, bool commit, kiln_error *err)
{
    VipsTarget *target = NULL;
    VipsImage *img = NULL;
    void *handle = NULL;
    int rc;

    memset(err, 0, sizeof *err);
    rc = sl_storage->open_write(sl_state, path, &target, &handle, err);
    if (rc != KILN_OK) {
        CU_ASSERT_PTR_NULL(target);
        CU_ASSERT_PTR_NULL(handle);
        return rc;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(target);
    CU_ASSERT_EQUAL(vips_black(&img, w, h, "bands", 3, NULL), 0);
    CU_ASSERT_EQUAL(vips_image_write_to_target(img, ".png", target, NULL), 0);
    CU_ASSERT_EQUAL(vips_target_end(target), 0);
    g_object_unref(img);
    g_object_unref(target);
    if (commit) {
        return sl_storage->commit(sl_state, handle, err);
    }
    sl_storage->abort(sl_state, handle);
    return KILN_OK;
}

/* Reads `path` through the plugin and decodes it; fills *w, *h. */
static int
sl_read_png(const char *path, int *w, int *h, kiln_error *err)
{
    VipsSource *source = NULL;
    VipsImage *img;
    double avg;
    int rc;

    memset(err, 0, sizeof *err);
    rc = sl_storage->open_read(sl_state, path, &source, err);
    if (rc != KILN_OK) {
        CU_ASSERT_PTR_NULL(source);
        return rc;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(source);
    img = vips_image_new_from_source(source, "", NULL);
    g_object_unref(source);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    CU_ASSERT_EQUAL(vips_avg(img, &avg, NULL), 0);
    *w = img->Xsize;
    *h = img->Ysize;
    g_object_unref(img);
    return KILN_OK;
}

/* ------------------------------------------------------------ suite */

static int
sl_suite_init(void)
{
    const char *dir = getenv("KILN_PLUGIN_DIR");
    const kiln_plugin_descriptor *desc;
    char so_path[SL_PATH_MAX];
    kiln_error err = {0};
    sl_settings settings;
    const char *tmp;

    if (dir == NULL || dir[0] == '\0') {
        dir = "build/plugins";
    }
    snprintf(so_path, sizeof so_path, "%s/storage-local.so", dir);
    sl_so = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (sl_so == NULL) {
        fprintf(stderr, "storage_local: %s\n", dlerror());
        return -1;
    }
    desc = dlsym(sl_so, KILN_DESCRIPTOR_SYMBOL);
    if (desc == NULL || desc->abi_major != KILN_ABI_MAJOR ||
        desc->init == NULL) {
        fprintf(stderr, "storage_local: bad descriptor in %s\n", so_path);
        return -1;
    }
    if (desc->init((kiln_plugin *)&sl_so, &sl_api, &err) != KILN_OK ||
        sl_storage == NULL) {
        fprintf(stderr, "storage_local: init failed: %s\n", err.message);
        return -1;
    }

    tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 200) {
        tmp = "/tmp";
    }
    snprintf(sl_base, sizeof sl_base, "%s/kiln-storage-local-XXXXXX", tmp);
    if (mkdtemp(sl_base) == NULL) {
        return -1;
    }
    /* Two missing levels: open() must create them. */
    snprintf(sl_root, sizeof sl_root, "%s/srv/root", sl_base);
    sl_join(sl_outside, sl_base, "outside");

    settings.root = sl_root;
    if (sl_storage->open(NULL, &settings, &sl_state, &err) != KILN_OK) {
        fprintf(stderr, "storage_local: open failed: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int
sl_suite_cleanup(void)
{
    if (sl_storage != NULL && sl_state != NULL) {
        sl_storage->close(sl_state);
    }
    sl_state = NULL;
    sl_storage = NULL;
    if (sl_base[0] != '\0') {
        nftw(sl_base, sl_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        sl_base[0] = '\0';
    }
    if (sl_so != NULL) {
        dlclose(sl_so);
        sl_so = NULL;
    }
    return 0;
}

/* ------------------------------------------------------------ tests */

static void
test_descriptor(void)
{
    const kiln_plugin_descriptor *desc = dlsym(sl_so, KILN_DESCRIPTOR_SYMBOL);

    CU_ASSERT_PTR_NOT_NULL_FATAL(desc);
    CU_ASSERT_STRING_EQUAL(desc->name, "storage-local");
    CU_ASSERT_EQUAL(desc->abi_minor, KILN_ABI_MINOR);
    CU_ASSERT_EQUAL(desc->host_api_size, sizeof(kiln_host_api));
    CU_ASSERT_EQUAL(desc->vips_major, VIPS_MAJOR_VERSION);
    CU_ASSERT_STRING_EQUAL(sl_storage->name, "local");
    CU_ASSERT_EQUAL(sl_storage->settings_size, sizeof(sl_settings));
    CU_ASSERT_EQUAL_FATAL(sl_storage->n_settings, 1);
    CU_ASSERT_STRING_EQUAL(sl_storage->settings[0].name, "root");
    CU_ASSERT_EQUAL(sl_storage->settings[0].kind, KILN_PARAM_STRING);
    CU_ASSERT(sl_storage->settings[0].flags & KILN_PARAM_REQUIRED);
}

static void
test_open_creates_root(void)
{
    struct stat sb;

    CU_ASSERT_EQUAL(stat(sl_root, &sb), 0);
    CU_ASSERT(S_ISDIR(sb.st_mode));
}

static void
test_open_bad_root(void)
{
    char file[SL_PATH_MAX];
    char root[SL_PATH_MAX];
    sl_settings settings;
    kiln_error err = {0};
    void *state = NULL;
    FILE *f;

    /* A root below a regular file can be neither created nor opened. */
    sl_join(file, sl_base, "plain");
    f = fopen(file, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    sl_join(root, file, "root");
    settings.root = root;
    CU_ASSERT_NOT_EQUAL(sl_storage->open(NULL, &settings, &state, &err),
                        KILN_OK);
    CU_ASSERT_PTR_NULL(state);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, root));
    remove(file);
}

static void
test_write_commit_read(void)
{
    kiln_error err;
    int w = 0;
    int h = 0;
    int hidden;

    CU_ASSERT_EQUAL(sl_write_png("/480x360/1.png", 8, 6, true, &err), KILN_OK);
    CU_ASSERT(sl_exists(sl_root, "480x360/1.png"));
    CU_ASSERT_EQUAL(sl_read_png("/480x360/1.png", &w, &h, &err), KILN_OK);
    CU_ASSERT_EQUAL(w, 8);
    CU_ASSERT_EQUAL(h, 6);
    /* Without the leading "/" it is the same file. */
    CU_ASSERT_EQUAL(sl_read_png("480x360/1.png", &w, &h, &err), KILN_OK);

    {
        char dir[SL_PATH_MAX];

        sl_join(dir, sl_root, "480x360");
        CU_ASSERT_EQUAL(sl_count(dir, &hidden), 1);
        CU_ASSERT_EQUAL(hidden, 0);
    }
}

static void
test_nested_dirs(void)
{
    kiln_error err;
    int w = 0;
    int h = 0;

    CU_ASSERT_EQUAL(sl_write_png("out/a//b/c/d.png", 5, 4, true, &err),
                    KILN_OK);
    CU_ASSERT(sl_exists(sl_root, "out/a/b/c/d.png"));
    CU_ASSERT_EQUAL(sl_read_png("/out/a/b/c/d.png", &w, &h, &err), KILN_OK);
    CU_ASSERT_EQUAL(w, 5);
    CU_ASSERT_EQUAL(h, 4);
    /* ".." that stays inside the root is fine. */
    CU_ASSERT_EQUAL(sl_write_png("out/x/../y.png", 3, 3, true, &err), KILN_OK);
    CU_ASSERT(sl_exists(sl_root, "out/y.png"));
}

static void
test_abort(void)
{
    char dir[SL_PATH_MAX];
    kiln_error err;
    int hidden;

    CU_ASSERT_EQUAL(sl_write_png("aborted/x.png", 4, 4, false, &err), KILN_OK);
    sl_join(dir, sl_root, "aborted");
    CU_ASSERT_EQUAL(sl_count(dir, &hidden), 0);
    CU_ASSERT_EQUAL(hidden, 0);
}

static void
test_replace_is_atomic(void)
{
    VipsTarget *target = NULL;
    VipsImage *img = NULL;
    void *handle = NULL;
    kiln_error err = {0};
    int w = 0;
    int h = 0;
    int hidden;

    CU_ASSERT_EQUAL(sl_write_png("replace.png", 2, 2, true, &err), KILN_OK);
    CU_ASSERT_EQUAL_FATAL(sl_storage->open_write(sl_state, "/replace.png",
                                                 &target, &handle, &err),
                          KILN_OK);
    CU_ASSERT_EQUAL(vips_black(&img, 7, 7, NULL), 0);
    CU_ASSERT_EQUAL(vips_image_write_to_target(img, ".png", target, NULL), 0);
    CU_ASSERT_EQUAL(vips_target_end(target), 0);
    /* Written but not committed: readers still see the old file, and
     * the new one has no name yet (O_TMPFILE), so a crash now would
     * leave nothing behind. */
    CU_ASSERT_EQUAL(sl_read_png("replace.png", &w, &h, &err), KILN_OK);
    CU_ASSERT_EQUAL(w, 2);
    CU_ASSERT_EQUAL(sl_count(sl_root, &hidden) > 0, true);
    CU_ASSERT_EQUAL(hidden, 0);
    /* The host may still hold the target at commit. */
    CU_ASSERT_EQUAL(sl_storage->commit(sl_state, handle, &err), KILN_OK);
    g_object_unref(target);
    g_object_unref(img);
    CU_ASSERT_EQUAL(sl_read_png("replace.png", &w, &h, &err), KILN_OK);
    CU_ASSERT_EQUAL(w, 7);
    CU_ASSERT_EQUAL(h, 7);
    sl_count(sl_root, &hidden);
    CU_ASSERT_EQUAL(hidden, 0);
}

static void
test_not_found(void)
{
    VipsSource *source = NULL;
    kiln_error err = {0};

    CU_ASSERT_EQUAL(sl_storage->open_read(sl_state, "/a/b.jpg", &source, &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_PTR_NULL(source);
    CU_ASSERT_STRING_EQUAL(err.message, "\"/a/b.jpg\" not found in storage");
}

/* Both directions refuse `path` as an escape, and nothing appears in the
 * directory outside the root. */
static void
sl_assert_escape(const char *path)
{
    char expect[SL_PATH_MAX];
    kiln_error err;
    int w;
    int h;
    int hidden;

    snprintf(expect, sizeof expect, "path \"%s\" escapes the storage root",
             path);
    CU_ASSERT_EQUAL(sl_read_png(path, &w, &h, &err), KILN_EPERM);
    CU_ASSERT_STRING_EQUAL(err.message, expect);
    CU_ASSERT_EQUAL(sl_write_png(path, 2, 2, true, &err), KILN_EPERM);
    CU_ASSERT_STRING_EQUAL(err.message, expect);
    CU_ASSERT_EQUAL(sl_count(sl_outside, &hidden), 1);
}

static void
sl_make_outside(void)
{
    char secret[SL_PATH_MAX];
    FILE *f;

    mkdir(sl_outside, 0755);
    sl_join(secret, sl_outside, "secret.png");
    f = fopen(secret, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("not for you", f);
    fclose(f);
}

static void
test_dotdot_escape(void)
{
    sl_make_outside();
    sl_assert_escape("/../etc/passwd");
    sl_assert_escape("/../../etc/passwd");
    sl_assert_escape("../outside/secret.png");
    sl_assert_escape("../../outside/new.png");
    sl_assert_escape("a/../../x.png");
    sl_assert_escape("/./a/b/../../../x.png");
}

static void
test_symlink_escape(void)
{
    char link[SL_PATH_MAX];
    char target[SL_PATH_MAX];

    sl_make_outside();
    /* Absolute and relative links to a file and to a directory outside. */
    sl_join(link, sl_root, "abs_file");
    sl_join(target, sl_outside, "secret.png");
    CU_ASSERT_EQUAL(symlink(target, link), 0);
    sl_join(link, sl_root, "rel_file");
    CU_ASSERT_EQUAL(symlink("../../outside/secret.png", link), 0);
    sl_join(link, sl_root, "abs_dir");
    CU_ASSERT_EQUAL(symlink(sl_outside, link), 0);
    sl_join(link, sl_root, "rel_dir");
    CU_ASSERT_EQUAL(symlink("../../outside", link), 0);
    sl_join(link, sl_root, "etc_passwd");
    CU_ASSERT_EQUAL(symlink("/etc/passwd", link), 0);
    sl_join(link, sl_root, "sub");
    mkdir(link, 0755);
    sl_join(link, sl_root, "sub/up");
    CU_ASSERT_EQUAL(symlink("../../../outside", link), 0);

    sl_assert_escape("abs_file");
    sl_assert_escape("/rel_file");
    sl_assert_escape("etc_passwd");
    sl_assert_escape("abs_dir/secret.png");
    sl_assert_escape("rel_dir/secret.png");
    sl_assert_escape("abs_dir/new.png");
    sl_assert_escape("rel_dir/new/deeper.png");
    sl_assert_escape("sub/up/secret.png");
    sl_assert_escape("sub/up/made/x.png");
    CU_ASSERT(!sl_exists(sl_outside, "new"));
    CU_ASSERT(!sl_exists(sl_outside, "made"));
}

static void
test_symlink_inside(void)
{
    char link[SL_PATH_MAX];
    kiln_error err;
    int w = 0;
    int h = 0;

    /* A relative link that stays inside the root is followed. */
    CU_ASSERT_EQUAL(sl_write_png("real/in.png", 6, 2, true, &err), KILN_OK);
    sl_join(link, sl_root, "alias");
    CU_ASSERT_EQUAL(symlink("real", link), 0);
    CU_ASSERT_EQUAL(sl_read_png("alias/in.png", &w, &h, &err), KILN_OK);
    CU_ASSERT_EQUAL(w, 6);
    CU_ASSERT_EQUAL(sl_write_png("alias/more/new.png", 1, 1, true, &err),
                    KILN_OK);
    CU_ASSERT(sl_exists(sl_root, "real/more/new.png"));
}

static void
test_bad_paths(void)
{
    static const char *const bad[] = {"",     "/", "a/", "/in/",
                                      "a/..", ".", "x/."};
    kiln_error err;
    size_t i;
    int w;
    int h;

    for (i = 0; i < KILN_N_ELEMENTS(bad); i++) {
        CU_ASSERT_EQUAL(sl_read_png(bad[i], &w, &h, &err), KILN_EINVAL);
        CU_ASSERT_EQUAL(sl_write_png(bad[i], 1, 1, true, &err), KILN_EINVAL);
    }
    CU_ASSERT_EQUAL(sl_read_png("a/", &w, &h, &err), KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "path \"a/\" ends with \"/\" (expected a file name "
                           "after the last \"/\")");
    /* A directory is not a file in either direction. */
    CU_ASSERT_EQUAL(sl_write_png("dir/f.png", 1, 1, true, &err), KILN_OK);
    CU_ASSERT_EQUAL(sl_read_png("/dir", &w, &h, &err), KILN_EINVAL);
    CU_ASSERT_EQUAL(sl_write_png("/dir", 1, 1, true, &err), KILN_EINVAL);
    CU_ASSERT(sl_exists(sl_root, "dir/f.png"));
}

static void
test_long_name(void)
{
    char path[300];
    kiln_error err;
    int w = 0;
    int h = 0;

    /* 250 bytes: the temporary name must be cut to fit NAME_MAX. */
    path[0] = '/';
    memset(path + 1, 'n', 246);
    memcpy(path + 247, ".png", 5);
    CU_ASSERT_EQUAL(sl_write_png(path, 3, 1, true, &err), KILN_OK);
    CU_ASSERT_EQUAL(sl_read_png(path, &w, &h, &err), KILN_OK);
    CU_ASSERT_EQUAL(w, 3);
}

static void
test_no_fd_leak(void)
{
    VipsSource *source = NULL;
    kiln_error err;
    int before = sl_count_fds();
    int i;
    int w;
    int h;

    for (i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(sl_write_png("leak/x.png", 2, 2, true, &err), KILN_OK);
        CU_ASSERT_EQUAL(sl_write_png("leak/y.png", 2, 2, false, &err), KILN_OK);
        CU_ASSERT_EQUAL(sl_read_png("leak/x.png", &w, &h, &err), KILN_OK);
        CU_ASSERT_EQUAL(sl_read_png("leak/none.png", &w, &h, &err),
                        KILN_ENOTFOUND);
        CU_ASSERT_EQUAL(sl_write_png("../leak.png", 2, 2, true, &err),
                        KILN_EPERM);
        CU_ASSERT_EQUAL(
            sl_storage->open_read(sl_state, "leak/x.png", &source, &err),
            KILN_OK);
        g_object_unref(source);
    }
    CU_ASSERT_EQUAL(sl_count_fds(), before);
}

int
test_storage_local_register(void)
{
    CU_pSuite suite =
        CU_add_suite("storage_local", sl_suite_init, sl_suite_cleanup);

    if (suite == NULL) {
        return -1;
    }
    if (CU_add_test(suite, "descriptor", test_descriptor) == NULL ||
        CU_add_test(suite, "open creates root", test_open_creates_root) ==
            NULL ||
        CU_add_test(suite, "open bad root", test_open_bad_root) == NULL ||
        CU_add_test(suite, "write commit read", test_write_commit_read) ==
            NULL ||
        CU_add_test(suite, "nested dirs", test_nested_dirs) == NULL ||
        CU_add_test(suite, "abort", test_abort) == NULL ||
        CU_add_test(suite, "replace is atomic", test_replace_is_atomic) ==
            NULL ||
        CU_add_test(suite, "not found", test_not_found) == NULL ||
        CU_add_test(suite, "dotdot escape", test_dotdot_escape) == NULL ||
        CU_add_test(suite, "symlink escape", test_symlink_escape) == NULL ||
        CU_add_test(suite, "symlink inside", test_symlink_inside) == NULL ||
        CU_add_test(suite, "bad paths", test_bad_paths) == NULL ||
        CU_add_test(suite, "long name", test_long_name) == NULL ||
        CU_add_test(suite, "no fd leak", test_no_fd_leak) == NULL) {
        return -1;
    }
    return 0;
}

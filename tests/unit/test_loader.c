/*
 * Loader tests: each refusal has its own test plugin (tests/plugins/)
 * and each refusal message is pinned here, numbers included. Also the
 * success paths: a good plugin, one built against an older (smaller)
 * host table, and the undoing of a failed init.
 */
#include <CUnit/CUnit.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/kiln.h"

int test_loader_register(void);

static char plugin_path[4096];

static const char *
tp(const char *name)
{
    const char *dir = getenv("KILN_TEST_PLUGIN_DIR");
    snprintf(plugin_path, sizeof plugin_path, "%s/%s.so",
             dir ? dir : "build/tests/plugins", name);
    return plugin_path;
}

static kiln_engine *
new_engine(void)
{
    return calloc(1, sizeof(kiln_engine));
}

static void
free_engine(kiln_engine *e)
{
    loader_unload_all(e);
    registry_free(&e->reg);
    free(e);
}

/* Loads `name` and expects a refusal whose message is `fmt` with the
 * plugin's path substituted for %s. */
static void
expect_refusal(const char *name, int code, const char *fmt)
{
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    const char *path = tp(name);
    int rc = loader_load_file(e, path, &err);
    CU_ASSERT_EQUAL(rc, code);
    char want[1024];
    snprintf(want, sizeof want, fmt, path);
    if (strcmp(err.message, want) != 0) {
        fprintf(stderr, "\n  got:  %s\n  want: %s\n", err.message, want);
    }
    CU_ASSERT_STRING_EQUAL(err.message, want);
    CU_ASSERT_EQUAL(e->n_plugins, 0);
    CU_ASSERT_EQUAL(e->reg.n_ops, 0);
    free_engine(e);
}

static void
test_no_descriptor(void)
{
    expect_refusal("no-descriptor", KILN_EABI,
                   "plugin %s has no kiln_plugin_descriptor_v2 symbol (not "
                   "a kiln plugin, or built for another ABI major)");
}

static void
test_abi_major(void)
{
    /* The test plugin is built with this SDK's minor, whatever it is. */
    char fmt[160];
    snprintf(fmt, sizeof fmt,
             "plugin %%s needs ABI %d.%d, host provides %d.%d (a different "
             "major version)",
             KILN_ABI_MAJOR + 1, KILN_ABI_MINOR, KILN_ABI_MAJOR,
             KILN_ABI_MINOR);
    expect_refusal("abi-major", KILN_EABI, fmt);
}

static void
test_descriptor_small(void)
{
    char fmt[512];
    snprintf(fmt, sizeof fmt,
             "plugin %%s: descriptor of 8 bytes (host knows %zu; set .size = "
             "sizeof the struct)",
             sizeof(kiln_plugin_descriptor));
    expect_refusal("descriptor-small", KILN_EABI, fmt);
}

/* net_check_url fills only a target whose size it knows. */
static void
test_net_target_size(void)
{
    const kiln_host_api *api = loader_host_api();
    kiln_net_target t = {.size = 0};
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(
        api->net_check_url(NULL, "source", "https://127.0.0.1/x", &t, &err),
        KILN_EABI);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "kiln_net_target of 0 bytes"));
    t.size = sizeof t;
    err_clear(&err);
    /* Loopback, refused by the guard: but the struct was read. */
    CU_ASSERT_EQUAL(
        api->net_check_url(NULL, "source", "https://127.0.0.1/x", &t, &err),
        KILN_EPERM);
    CU_ASSERT_EQUAL(t.size, sizeof t);
}

static void
test_abi1(void)
{
    expect_refusal("abi1", KILN_EABI,
                   "plugin %s was built for kiln's plugin ABI 1; this host "
                   "loads ABI 2 plugins: rebuild it against this SDK "
                   "(docs/plugins.md, \"Moving from ABI 1\")");
}

/* Loads `name` (a test plugin); it must load. */
static void
expect_load(const char *name)
{
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(loader_load_file(e, tp(name), &err), KILN_OK);
    if (err.message[0] != '\0') {
        fprintf(stderr, "\n  %s: %s\n", name, err.message);
    }
    CU_ASSERT_EQUAL(e->n_plugins, 1);
    free_engine(e);
}

/* Built with a newer minor or a larger host table, using none of it: a
 * plugin needs the features it uses. */
static void
test_abi_minor(void)
{
    expect_load("test-abi-minor-newer");
}

static void
test_api_table(void)
{
    expect_load("test-api-table-larger");
}

static void
test_vips_major(void)
{
    char fmt[512];
    snprintf(fmt, sizeof fmt,
             "plugin %%s was built against libvips %d.%d, host runs "
             "libvips %d.%d (a different major version)",
             vips_version(0) + 1, VIPS_MINOR_VERSION, vips_version(0),
             vips_version(1));
    expect_refusal("vips-major", KILN_EABI, fmt);
}

static void
test_init_fails_undone(void)
{
    expect_refusal("test-init-fails", KILN_EINVAL,
                   "plugin %s (\"test-init-fails\") failed to initialise: "
                   "test plugin failed on purpose");
    /* The object is closed: RTLD_NOLOAD finds nothing. */
    void *h = dlopen(tp("test-init-fails"), RTLD_NOW | RTLD_NOLOAD);
    CU_ASSERT_PTR_NULL(h);
    if (h != NULL) {
        dlclose(h);
    }
}

static void
test_writable_by_others(void)
{
    char dir[] = "/tmp/kiln-loader-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char copy[4200], cmd[8600];
    snprintf(copy, sizeof copy, "%s/test-good.so", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", tp("test-good"), copy);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    CU_ASSERT_EQUAL(chmod(copy, 0666), 0);
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(loader_load_file(e, copy, &err), KILN_EPERM);
    char want[4400];
    snprintf(want, sizeof want,
             "plugin %s is writable by others (mode 0666); refusing to "
             "load it",
             copy);
    CU_ASSERT_STRING_EQUAL(err.message, want);
    CU_ASSERT_EQUAL(e->n_plugins, 0);
    /* The same file without the write bit loads. */
    CU_ASSERT_EQUAL(chmod(copy, 0644), 0);
    CU_ASSERT_EQUAL(loader_load_file(e, copy, &err), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL(registry_find_op(&e->reg, "test-good-invert"));
    free_engine(e);
    unlink(copy);
    rmdir(dir);
}

/* Copies test-good.so into a new folder under /tmp as NAME; fills dir
 * and copy. */
static void
tl_copy(char *dir, char *copy, size_t size, const char *name)
{
    strcpy(dir, "/tmp/kiln-loader-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(copy, size, "%s/%s", dir, name);
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && chmod 0644 '%s'",
             tp("test-good"), copy, copy);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

/* loader_load_file's message for `copy` starts with `start`; returns the
 * code. */
static int
tl_refused(const char *copy, const char *start)
{
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    int rc = loader_load_file(e, copy, &err);
    if (strncmp(err.message, start, strlen(start)) != 0) {
        fprintf(stderr, "\n  got:  %s\n  want: %s...\n", err.message, start);
        CU_FAIL("loader message");
    }
    CU_ASSERT_EQUAL(e->n_plugins, 0);
    free_engine(e);
    return rc;
}

/* Group-writable files, folders others may write (unless sticky), files
 * and folders of another owner, and a file named unlike its descriptor. */
static void
test_who_may_change_it(void)
{
    char dir[64], copy[4200], want[4400];
    tl_copy(dir, copy, sizeof copy, "test-good.so");
    CU_ASSERT_EQUAL(chmod(copy, 0664), 0);
    snprintf(want, sizeof want, "plugin %s is writable by others (mode 0664)",
             copy);
    CU_ASSERT_EQUAL(tl_refused(copy, want), KILN_EPERM);
    CU_ASSERT_EQUAL(chmod(copy, 0644), 0);
    /* The folder: writable by its group, then by all but sticky. */
    CU_ASSERT_EQUAL(chmod(dir, 0775), 0);
    snprintf(want, sizeof want,
             "plugin %s is in %s, a folder others may write (mode 0775)", copy,
             dir);
    CU_ASSERT_EQUAL(tl_refused(copy, want), KILN_EPERM);
    CU_ASSERT_EQUAL(chmod(dir, 01777), 0);
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(loader_load_file(e, copy, &err), KILN_OK);
    free_engine(e);
    CU_ASSERT_EQUAL(chmod(dir, 0755), 0);
    /* Another owner: only root can give a file away. */
    if (geteuid() == 0) {
        CU_ASSERT_EQUAL(chown(copy, 65534, 65534), 0);
        snprintf(want, sizeof want, "plugin %s is owned by uid 65534", copy);
        CU_ASSERT_EQUAL(tl_refused(copy, want), KILN_EPERM);
        CU_ASSERT_EQUAL(chown(copy, 0, 0), 0);
        CU_ASSERT_EQUAL(chown(dir, 65534, 65534), 0);
        snprintf(want, sizeof want,
                 "plugin %s is in %s, a folder owned by uid 65534", copy, dir);
        CU_ASSERT_EQUAL(tl_refused(copy, want), KILN_EPERM);
        CU_ASSERT_EQUAL(chown(dir, 0, 0), 0);
    }
    unlink(copy);
    rmdir(dir);
    /* Renamed to pass for another plugin. */
    tl_copy(dir, copy, sizeof copy, "ops-vips.so");
    snprintf(want, sizeof want,
             "plugin %s declares the name \"test-good\": its file must be "
             "named test-good.so; refusing to load it",
             copy);
    CU_ASSERT_EQUAL(tl_refused(copy, want), KILN_EINVAL);
    unlink(copy);
    rmdir(dir);
}

static void
test_good_and_duplicate(void)
{
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(loader_load_file(e, tp("test-good"), &err), KILN_OK);
    CU_ASSERT_EQUAL(e->n_plugins, 1);
    const reg_op *op = registry_find_op(&e->reg, "test-good-invert");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_PTR_EQUAL(op->owner, e->plugins[0]);
    /* Run its execute through the same path the executor uses. */
    VipsImage *black = NULL, *out = NULL;
    CU_ASSERT_EQUAL_FATAL(vips_black(&black, 4, 4, "bands", 3, NULL), 0);
    VipsImage *u = NULL;
    CU_ASSERT_EQUAL_FATAL(vips_cast_uchar(black, &u, NULL), 0);
    VipsImage *in[1] = {u};
    const reg_impl *impl = registry_op_impl(op, "vips");
    CU_ASSERT_PTR_NOT_NULL_FATAL(impl);
    CU_ASSERT_PTR_EQUAL(impl->owner, e->plugins[0]);
    CU_ASSERT_PTR_NULL(registry_op_impl(op, "magick"));
    CU_ASSERT_EQUAL(impl->impl.execute(NULL, NULL, in, &out, &err), KILN_OK);
    double avg = 0;
    CU_ASSERT_EQUAL(vips_avg(out, &avg, NULL), 0);
    CU_ASSERT_DOUBLE_EQUAL(avg, 255, 1e-9);
    g_object_unref(out);
    g_object_unref(u);
    g_object_unref(black);
    /* A second plugin of the same name is refused. */
    CU_ASSERT_EQUAL(loader_load_file(e, tp("test-good"), &err), KILN_EEXIST);
    char want[4400];
    snprintf(want, sizeof want,
             "plugin %s: a plugin named \"test-good\" is already loaded "
             "from %s",
             tp("test-good"), tp("test-good"));
    CU_ASSERT_STRING_EQUAL(err.message, want);
    CU_ASSERT_EQUAL(e->n_plugins, 1);
    free_engine(e);
}

static void
test_older_table(void)
{
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(loader_load_file(e, tp("test-older-table"), &err), KILN_OK);
    CU_ASSERT_EQUAL(e->n_plugins, 1);
    free_engine(e);
}

static void
test_missing_file(void)
{
    kiln_engine *e = new_engine();
    kiln_error err;
    err_clear(&err);
    CU_ASSERT_EQUAL(loader_load_file(e, "/nonexistent/x.so", &err),
                    KILN_ENOTFOUND);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "plugin /nonexistent/x.so: No such file or "
                           "directory");
    free_engine(e);
}

static void
test_host_has(void)
{
    const kiln_host_api *api = loader_host_api();
    CU_ASSERT_TRUE(KILN_HOST_HAS(api, exec_load_image));
    kiln_host_api small = *api;
    small.size = offsetof(kiln_host_api, exec_warn);
    CU_ASSERT_FALSE(KILN_HOST_HAS(&small, exec_warn));
    CU_ASSERT_TRUE(KILN_HOST_HAS(&small, resolve_length));
}

/* The host's quote(), which every storage plugin uses for its messages. */
/* A transport's call and reply carry their sizes: a call the host cannot
 * read gets a 500 saying so, a reply too small is left alone. */
static void
test_host_call_sizes(void)
{
    const kiln_host_api *api = loader_host_api();
    kiln_engine *e = new_engine();
    kiln_call call = {.size = 0, .method = "GET", .path = "/health"};
    kiln_reply reply = {.size = sizeof reply, .status = -1};
    api->api_call(e, &call, &reply);
    CU_ASSERT_EQUAL(reply.status, 500);
    CU_ASSERT_EQUAL(reply.size, sizeof reply);
    CU_ASSERT_PTR_NOT_NULL(
        reply.body != NULL ? strstr(reply.body, "kiln_call.size") : NULL);
    api->reply_free(&reply);
    kiln_reply small = {.size = 8, .status = -1};
    call.size = sizeof call;
    api->api_call(e, &call, &small);
    CU_ASSERT_EQUAL(small.status, -1);
    CU_ASSERT_PTR_NULL(small.body);
    free_engine(e);
}

static void
test_host_quote(void)
{
    const kiln_host_api *api = loader_host_api();
    char buf[32];
    CU_ASSERT_TRUE(KILN_HOST_HAS(api, quote));
    CU_ASSERT_STRING_EQUAL(api->quote(buf, sizeof buf, "/a b/c.jpg"),
                           "\"/a b/c.jpg\"");
    CU_ASSERT_STRING_EQUAL(api->quote(buf, sizeof buf, "x\"y\\z\n"),
                           "\"x\\\"y\\\\z\\x0a\"");
    CU_ASSERT_STRING_EQUAL(api->quote(buf, sizeof buf, NULL), "\"\"");
    /* Cut to fit, with an ellipsis, never past the buffer. */
    CU_ASSERT_STRING_EQUAL(
        api->quote(buf, sizeof buf, "0123456789abcdefghijklmnopqrstuvwxyz"),
        "\"0123456789abcdefghijkl...\"");
    CU_ASSERT_TRUE(strlen(buf) < sizeof buf);
}

int
test_loader_register(void)
{
    CU_pSuite s = CU_add_suite("loader", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "missing descriptor", test_no_descriptor);
    CU_add_test(s, "different ABI major", test_abi_major);
    CU_add_test(s, "an ABI 1 plugin", test_abi1);
    CU_add_test(s, "a descriptor too small", test_descriptor_small);
    CU_add_test(s, "net_check_url's target size", test_net_target_size);
    CU_add_test(s, "newer ABI minor, nothing newer used", test_abi_minor);
    CU_add_test(s, "larger host table, nothing newer called", test_api_table);
    CU_add_test(s, "different libvips major", test_vips_major);
    CU_add_test(s, "failing init undone", test_init_fails_undone);
    CU_add_test(s, "writable by others", test_writable_by_others);
    CU_add_test(s, "who may change it, and its name", test_who_may_change_it);
    CU_add_test(s, "good plugin, duplicate name", test_good_and_duplicate);
    CU_add_test(s, "older host table accepted", test_older_table);
    CU_add_test(s, "missing file", test_missing_file);
    CU_add_test(s, "KILN_HOST_HAS", test_host_has);
    CU_add_test(s, "host quote", test_host_quote);
    CU_add_test(s, "transport call and reply sizes", test_host_call_sizes);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}

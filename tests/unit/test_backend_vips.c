/*
 * backend-vips runs a "vips" service two ways that must agree: its own
 * executor of whole graphs (plugins/backend-vips/run.c, what every "vips"
 * service uses) and the SDK path any plugin's backend takes
 * (core/exec_native.c over the kiln_backend it registers: probe, decode,
 * encode, the conversions). At -O0 no pass changes pixels, so for every
 * op chain both give the same pixels, exactly. The chains are generated
 * (seeded: KILN_TEST_SEED, printed on a failure) over every op but
 * annotation (fonts), on an opaque and a transparent source, with a
 * watermark read through the host's load calls; a mismatch prints the
 * request.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../plugins/backend-vips/vips.h"
#include "unit.h"

int test_backend_vips_register(void);

static char tbv_dir[] = "/tmp/kiln-backend-vips-XXXXXX";
static char tbv_root[600];
static kiln_engine *tbv_engine;

/* A source of w x h with `bands` bands: smooth gradients and some noise,
 * so that resampling and convolution see structure. */
static int
tbv_write_source(const char *name, int w, int h, int bands)
{
    VipsImage *x = NULL, *n = NULL, *im = NULL;
    char path[700];
    snprintf(path, sizeof path, "%s/in/%s", tbv_root, name);
    int rc = 1;
    if (vips_xyz(&x, w, h, NULL) == 0 &&
        vips_gaussnoise(&n, w, h, "sigma", 30.0, "mean", 0.0, NULL) == 0) {
        VipsImage *b[4] = {NULL, NULL, NULL, NULL}, *t = NULL;
        VipsImage *xs = NULL, *ys = NULL;
        if (vips_extract_band(x, &xs, 0, NULL) == 0 &&
            vips_extract_band(x, &ys, 1, NULL) == 0 &&
            vips_linear1(xs, &b[0], 255.0 / w, 0, NULL) == 0 &&
            vips_linear1(ys, &b[1], 255.0 / h, 0, NULL) == 0 &&
            vips_add(b[0], n, &b[2], NULL) == 0 &&
            vips_linear1(b[1], &b[3], -0.5, 200, NULL) == 0) {
            VipsImage *all[4] = {b[2], b[1], b[3], b[0]};
            if (vips_bandjoin(all, &t, bands, NULL) == 0 &&
                vips_cast_uchar(t, &im, NULL) == 0) {
                rc = vips_image_write_to_file(im, path, NULL) != 0;
            }
        }
        for (int i = 0; i < 4; i++) {
            if (b[i] != NULL) {
                g_object_unref(b[i]);
            }
        }
        if (xs != NULL) {
            g_object_unref(xs);
        }
        if (ys != NULL) {
            g_object_unref(ys);
        }
        if (t != NULL) {
            g_object_unref(t);
        }
    }
    if (x != NULL) {
        g_object_unref(x);
    }
    if (n != NULL) {
        g_object_unref(n);
    }
    if (im != NULL) {
        g_object_unref(im);
    }
    return rc;
}

static int
tbv_setup(void)
{
    if (mkdtemp(tbv_dir) == NULL) {
        return 1;
    }
    snprintf(tbv_root, sizeof tbv_root, "%s/storage", tbv_dir);
    char path[700];
    snprintf(path, sizeof path, "%s/in", tbv_root);
    if (mkdir(tbv_root, 0755) != 0 || mkdir(path, 0755) != 0 ||
        tbv_write_source("opaque.png", 173, 119, 3) != 0 ||
        tbv_write_source("alpha.png", 131, 157, 4) != 0 ||
        tbv_write_source("mark.png", 41, 23, 4) != 0) {
        return 1;
    }
    kiln_error err;
    err_clear(&err);
    kiln_config *c = unit_config();
    if (c == NULL) {
        return 1;
    }
    if (config_set_storage_root(c, tbv_root, &err) != KILN_OK ||
        engine_new_take(c, true, &tbv_engine, &err) != KILN_OK) {
        fprintf(stderr, "backend-vips test setup: %s\n", err.message);
        return 1;
    }
    tbv_engine->opt_level = 0;
    return 0;
}

static int
tbv_teardown(void)
{
    engine_free(tbv_engine);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tbv_dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* xorshift: the same chains for the same seed on every machine. */
static unsigned long long tbv_state;

static unsigned
tbv_rand(unsigned n)
{
    tbv_state ^= tbv_state << 13;
    tbv_state ^= tbv_state >> 7;
    tbv_state ^= tbv_state << 17;
    return (unsigned)(tbv_state % n);
}

/* Appends one random transformation to buf. */
static void
tbv_op(char *buf, size_t size)
{
    static const char *const gravities[] = {"center", "north", "southeast",
                                            "west", "northwest"};
    static const char *const filters[] = {"negate", "grayscale",  "sepia",
                                          "emboss", "edgedetect", "sharpen"};
    static const char *const fits[] = {"box", "stretch", "cropbox"};
    size_t l = strlen(buf);
    const char *g = gravities[tbv_rand(5)];
    switch (tbv_rand(13)) {
    case 0:
        snprintf(buf + l, size - l,
                 "{\"type\": \"resize\", \"width\": %u, \"height\": %u}",
                 8 + tbv_rand(300), 8 + tbv_rand(300));
        break;
    case 1:
        snprintf(buf + l, size - l,
                 "{\"type\": \"resize\", \"width\": \"%u%%\"}",
                 10 + tbv_rand(150));
        break;
    case 2:
        snprintf(
            buf + l, size - l,
            "{\"type\": \"crop\", \"gravity\": \"%s\", \"width\": \"%u%%\", "
            "\"height\": \"%u%%\", \"xoffset\": %u}",
            g, 20 + tbv_rand(80), 20 + tbv_rand(80), tbv_rand(5));
        break;
    case 3:
        snprintf(buf + l, size - l, "{\"type\": \"rotate\", \"degrees\": %s}",
                 tbv_rand(2) ? "90" : (tbv_rand(2) ? "270" : "33.5"));
        break;
    case 4:
        snprintf(buf + l, size - l,
                 "{\"type\": \"flip\", \"direction\": \"%s\"}",
                 tbv_rand(2) ? "x" : "y");
        break;
    case 5:
        snprintf(buf + l, size - l,
                 "{\"type\": \"blur\", \"sigma\": %.1f, \"radius\": 0}",
                 0.5 + tbv_rand(40) / 10.0);
        break;
    case 6:
        snprintf(buf + l, size - l,
                 "{\"type\": \"brightness\", \"bright_level\": %d}",
                 (int)tbv_rand(200) - 100);
        break;
    case 7:
        snprintf(buf + l, size - l, "{\"type\": \"contrast\", \"level\": %d}",
                 (int)tbv_rand(200) - 100);
        break;
    case 8:
        snprintf(buf + l, size - l,
                 "{\"type\": \"colorize\", \"red\": %u, \"green\": %u, "
                 "\"blue\": %u}",
                 tbv_rand(100), tbv_rand(100), tbv_rand(100));
        break;
    case 9:
        snprintf(buf + l, size - l,
                 "{\"type\": \"filter\", \"filter\": \"%s\"}",
                 filters[tbv_rand(6)]);
        break;
    case 10:
        snprintf(buf + l, size - l,
                 "{\"type\": \"fitmethod\", \"fit_type\": \"%s\", \"width\": "
                 "%u, \"height\": %u, \"color\": \"#3366cc\", \"gravity\": "
                 "\"%s\"}",
                 fits[tbv_rand(3)], 16 + tbv_rand(200), 16 + tbv_rand(200), g);
        break;
    case 11:
        snprintf(buf + l, size - l,
                 "{\"type\": \"watermark\", \"source\": \"/in/mark.png\", "
                 "\"gravity\": \"%s\", \"width\": \"%u%%\", \"opacity\": %u}",
                 g, 10 + tbv_rand(60), 1 + tbv_rand(10));
        break;
    default:
        snprintf(buf + l, size - l, "{\"type\": \"%s\"}",
                 tbv_rand(2) ? "enhance" : "ulb");
        break;
    }
}

/* Runs `text` (its destination "/out/DEST.png") with the engine as it is.
 * Returns the run's code; *ok says whether the job was written. */
static int
tbv_run(const char *text, bool *ok, char *why, size_t why_size)
{
    arena *a = NULL;
    graph *g = NULL;
    errlist errs = {0};
    int rc = engine_compile(tbv_engine, text, strlen(text), &a, &g, &errs);
    *ok = false;
    why[0] = '\0';
    if (rc != KILN_OK) {
        if (errs.n > 0) {
            snprintf(why, why_size, "compile: %s", errs.items[0].e.message);
        }
        errlist_free(&errs);
        arena_free(a);
        return rc;
    }
    errlist_free(&errs);
    exec_result res;
    rc = engine_execute(tbv_engine, g, &res);
    *ok = res.n_jobs == 1 && res.jobs[0].ok;
    if (!*ok) {
        snprintf(why, why_size, "%s",
                 res.n_jobs ? res.jobs[0].error : res.error);
    }
    exec_result_free(&res);
    arena_free(a);
    return rc;
}

/* True when the two PNGs hold the same pixels. */
static bool
tbv_same(const char *a, const char *b, char *diff, size_t size)
{
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/out/%s", tbv_root, a);
    snprintf(pb, sizeof pb, "%s/out/%s", tbv_root, b);
    VipsImage *ia = vips_image_new_from_file(pa, NULL);
    VipsImage *ib = vips_image_new_from_file(pb, NULL);
    bool same = false;
    if (ia == NULL || ib == NULL) {
        snprintf(diff, size, "cannot read the outputs");
    } else if (ia->Xsize != ib->Xsize || ia->Ysize != ib->Ysize ||
               ia->Bands != ib->Bands) {
        snprintf(diff, size, "%dx%dx%d against %dx%dx%d", ia->Xsize, ia->Ysize,
                 ia->Bands, ib->Xsize, ib->Ysize, ib->Bands);
    } else {
        size_t la = 0, lb = 0;
        void *ma = vips_image_write_to_memory(ia, &la);
        void *mb = vips_image_write_to_memory(ib, &lb);
        same = ma != NULL && mb != NULL && la == lb && memcmp(ma, mb, la) == 0;
        if (!same) {
            size_t n = 0;
            for (size_t i = 0; ma && mb && i < la && i < lb; i++) {
                n += ((unsigned char *)ma)[i] != ((unsigned char *)mb)[i];
            }
            snprintf(diff, size, "%zu of %zu samples differ", n, la);
        }
        g_free(ma);
        g_free(mb);
    }
    if (ia != NULL) {
        g_object_unref(ia);
    }
    if (ib != NULL) {
        g_object_unref(ib);
    }
    return same;
}

static void
test_backend_vips_paths_agree(void)
{
    const char *seed_env = getenv("KILN_TEST_SEED");
    unsigned long long seed =
        seed_env != NULL ? strtoull(seed_env, NULL, 10) : 20261207ULL;
    tbv_state = seed * 2654435761ULL + 1;
    /* The executor the built-in plugin registered, put back after each
     * SDK-path run. */
    size_t n_runners = tbv_engine->n_runners;
    CU_ASSERT_PTR_NOT_NULL_FATAL(engine_runner(tbv_engine, "vips"));
    const int n_chains = 60;
    int mismatches = 0, both_ok = 0;
    for (int i = 0; i < n_chains && mismatches < 3; i++) {
        char ops[2048] = "";
        int n_ops = 1 + (int)tbv_rand(4);
        for (int k = 0; k < n_ops; k++) {
            if (k > 0) {
                strcat(ops, ", ");
            }
            tbv_op(ops, sizeof ops);
        }
        const char *src = tbv_rand(2) ? "/in/alpha.png" : "/in/opaque.png";
        char text[2][4096];
        for (int w = 0; w < 2; w++) {
            snprintf(text[w], sizeof text[w],
                     "{\"service_id\": 1, \"source\": \"%s\", \"jobs\": "
                     "[{\"destination\": \"/out/%c%d.png\", \"quality\": 90, "
                     "\"transformations\": [%s]}]}",
                     src, w ? 'b' : 'a', i, ops);
        }
        bool ok[2];
        char why[2][1024];
        tbv_run(text[0], &ok[0], why[0], sizeof why[0]);
        tbv_engine->n_runners = 0; /* the SDK path (exec_native.c) */
        tbv_run(text[1], &ok[1], why[1], sizeof why[1]);
        tbv_engine->n_runners = n_runners;
        char diff[256] = "";
        char na[32], nb[32];
        snprintf(na, sizeof na, "a%d.png", i);
        snprintf(nb, sizeof nb, "b%d.png", i);
        bool agree =
            ok[0] == ok[1] && (!ok[0] || tbv_same(na, nb, diff, sizeof diff));
        if (!agree) {
            mismatches++;
            fprintf(stderr,
                    "backend-vips paths disagree (KILN_TEST_SEED=%llu, chain "
                    "%d): %s\n  request: %s\n  executor: %s\n  SDK path: %s\n",
                    seed, i, diff[0] ? diff : "one failed", text[0],
                    ok[0] ? "ok" : why[0], ok[1] ? "ok" : why[1]);
        }
        both_ok += ok[0] && ok[1];
        CU_ASSERT_TRUE(agree);
    }
    /* Most chains must run at all, or the comparison says nothing. */
    CU_ASSERT_TRUE(both_ok >= n_chains / 2);
}

/* The backend is registered like any other and lists its formats. */
static void
test_backend_vips_registered(void)
{
    const reg_backend *be = registry_find_backend(&tbv_engine->reg, "vips");
    CU_ASSERT_PTR_NOT_NULL_FATAL(be);
    CU_ASSERT_PTR_NOT_NULL_FATAL(be->owner);
    CU_ASSERT_TRUE(be->owner->builtin);
    CU_ASSERT_STRING_EQUAL(be->owner->name, "backend-vips");
    /* Its executor runs whole graphs: every pass applies to it. */
    CU_ASSERT_TRUE(be->runs_graphs);
    bool jpeg = false, heic = false;
    for (const char *const *f = be->be.write_formats; *f != NULL; f++) {
        jpeg = jpeg || strcmp(*f, "jpeg") == 0;
        heic = heic || strcmp(*f, "heic") == 0;
    }
    CU_ASSERT_TRUE(jpeg && heic);
}

int
test_backend_vips_register(void)
{
    CU_pSuite s = CU_add_suite("backend-vips", tbv_setup, tbv_teardown);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "registered as a built-in plugin",
                test_backend_vips_registered);
    CU_add_test(s, "its executor and the SDK path give the same pixels",
                test_backend_vips_paths_agree);
    return 0;
}

/*
 * SVG and PDF sources, rendered in a child process (issue 12). librsvg
 * and poppler render inside one call that never returns to libvips, so a
 * hostile file (a 9000x9000 SVG with a huge blur ran for minutes at 2.4 GB)
 * cannot be cancelled in the server's process. A service that enables
 * them ("vector_sources") has each one rendered by `kiln render-source`,
 * started afresh (posix_spawn of our own executable: no fork of a
 * threaded process) under RLIMIT_CPU and RLIMIT_AS, killed with SIGKILL
 * at the process's deadline or shutdown. The child sends back an
 * uncompressed PNG, which the server decodes with the loader it trusts
 * for every source: a child taken over by a hostile file can only send
 * what any client could.
 *
 * Parent: render_source(). Child: render_source_main().
 */
#include "kiln.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The child's exit statuses that mean "said why on stderr". */
#define RENDER_EXIT_FAILED 3

/* Writes all of buf to fd; false on a write error. */
static bool
render_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Appends what fd has now to *buf (growing it up to max bytes); returns
 * false at end of file or error, or when max would be passed (*over). */
static bool
render_read_some(int fd, char **buf, size_t *len, size_t *cap, size_t max,
                 bool *over)
{
    if (*len == *cap) {
        size_t ncap = *cap != 0 ? *cap * 2 : 65536;
        if (ncap > max + 1) {
            ncap = max + 1;
        }
        if (ncap <= *len) {
            *over = true;
            return false;
        }
        char *nb = realloc(*buf, ncap);
        if (nb == NULL) {
            *over = true;
            return false;
        }
        *buf = nb;
        *cap = ncap;
    }
    ssize_t n = read(fd, *buf + *len, *cap - *len);
    if (n < 0 && errno == EINTR) {
        return true;
    }
    if (n <= 0) {
        return false;
    }
    *len += (size_t)n;
    if (*len > max) {
        *over = true;
        return false;
    }
    return true;
}

int
render_source(const char *format, const void *bytes, size_t len,
              int64_t max_pixels, const config_vector *v,
              const exec_deadline *dl, void **out, size_t *out_len,
              kiln_error *err)
{
    *out = NULL;
    *out_len = 0;
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) {
        return err_set(err, KILN_EINTERNAL,
                       "cannot find kiln's own executable to render the %s",
                       format);
    }
    exe[el] = '\0';
    /* The bytes go in through a memory file: the child reads them at its
     * pace while we only read its output (no pipe deadlock). */
    int in_fd = memfd_create("kiln-render-in", MFD_CLOEXEC);
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    if (in_fd < 0 || !render_write_all(in_fd, bytes, len) ||
        lseek(in_fd, 0, SEEK_SET) != 0 || pipe2(out_p, O_CLOEXEC) != 0 ||
        pipe2(err_p, O_CLOEXEC) != 0) {
        int e = errno;
        if (in_fd >= 0) {
            close(in_fd);
        }
        for (int i = 0; i < 2; i++) {
            if (out_p[i] >= 0) {
                close(out_p[i]);
            }
            if (err_p[i] >= 0) {
                close(err_p[i]);
            }
        }
        return err_set(err, KILN_EIO, "cannot start the %s renderer: %s",
                       format, strerror(e));
    }
    char pixels[32], cpu[32], mem[32];
    snprintf(pixels, sizeof pixels, "%lld", (long long)max_pixels);
    snprintf(cpu, sizeof cpu, "%g", v->max_cpu_time);
    snprintf(mem, sizeof mem, "%lld", (long long)v->max_memory);
    char *argv[] = {exe, "render-source", (char *)format, pixels, cpu, mem,
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
    pid_t pid = -1;
    int src = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in_fd);
    close(out_p[1]);
    close(err_p[1]);
    if (src != 0) {
        close(out_p[0]);
        close(err_p[0]);
        return err_set(err, KILN_EIO, "cannot start the %s renderer: %s",
                       format, strerror(src));
    }
    /* The output is an uncompressed PNG of at most max_pixels RGBA pixels
     * (one filter byte a row, chunk headers: a little more). */
    size_t max_out = (size_t)max_pixels * 4 + (size_t)max_pixels / 8 + 65536;
    char *buf = NULL, *ebuf = NULL;
    size_t blen = 0, bcap = 0, elen = 0, ecap = 0;
    bool over = false, eover = false, out_open = true, err_open = true;
    /* Wall time: the process's deadline, and never more than a few times
     * the CPU allowance (a child that sleeps uses no CPU). */
    double wall_end = clock_ms() + v->max_cpu_time * 3e3 + 2e3;
    const char *killed = NULL;
    while (out_open || err_open) {
        double now = clock_ms();
        if (dl != NULL && dl->cancel != NULL && *dl->cancel) {
            killed = "the server is shutting down";
        } else if (dl != NULL && dl->at_ms > 0 && now > dl->at_ms) {
            killed = "the process ran past its max_process_time";
        } else if (now > wall_end) {
            killed = "it ran past the renderer's time allowance";
        } else if (over) {
            killed = "its output was larger than max_pixels allows";
        }
        if (killed != NULL) {
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pf[2] = {{out_open ? out_p[0] : -1, POLLIN, 0},
                               {err_open ? err_p[0] : -1, POLLIN, 0}};
        int n = poll(pf, 2, 100);
        if (n < 0 && errno != EINTR) {
            killed = "it could not be watched";
            kill(pid, SIGKILL);
            break;
        }
        if (out_open && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            out_open =
                render_read_some(out_p[0], &buf, &blen, &bcap, max_out, &over);
        }
        if (err_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            err_open =
                render_read_some(err_p[0], &ebuf, &elen, &ecap, 1024, &eover);
        }
    }
    close(out_p[0]);
    close(err_p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int rc = KILN_OK;
    const char *what = strcmp(format, "svg") == 0 ? "SVG" : "PDF";
    if (killed != NULL) {
        rc = err_set(err, KILN_ELIMIT, "rendering the %s was stopped: %s", what,
                     killed);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGXCPU || sig == SIGKILL) {
            rc = err_set(err, KILN_ELIMIT,
                         "rendering the %s used more than its %g s of CPU "
                         "time (vector_sources.max_cpu_time)",
                         what, v->max_cpu_time);
        } else {
            rc = err_set(err, KILN_EINVAL,
                         "rendering the %s failed: the renderer crashed or "
                         "ran out of its %lld bytes of memory "
                         "(vector_sources.max_memory; signal %d)",
                         what, (long long)v->max_memory, sig);
        }
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* The child's one line, cut to what the message can hold. */
        while (elen > 0 && (ebuf[elen - 1] == '\n' || ebuf[elen - 1] == ' ')) {
            elen--;
        }
        rc = err_set(err, KILN_EINVAL, "cannot render the %s: %.*s", what,
                     (int)(elen < 600 ? elen : 600), ebuf != NULL ? ebuf : "");
    } else if (blen == 0) {
        rc = err_set(err, KILN_EINVAL, "cannot render the %s: no output", what);
    }
    free(ebuf);
    if (rc != KILN_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = blen;
    return KILN_OK;
}

/* ---------------------------------------------------------------- child */

/* Says why on stderr, on one line (repeated lines once, "; " between),
 * and ends the child. */
static int
render_fail(const char *fmt, const char *detail)
{
    char text[1024], line[1024] = "";
    snprintf(text, sizeof text, fmt, detail);
    size_t used = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (*l == '\0' || strstr(line, l) != NULL) {
            continue;
        }
        int n = snprintf(line + used, sizeof line - used, "%s%s",
                         used > 0 ? "; " : "", l);
        if (n < 0 || (size_t)n >= sizeof line - used) {
            break;
        }
        used += (size_t)n;
    }
    fprintf(stderr, "%s\n", line);
    return RENDER_EXIT_FAILED;
}

/* The renderer's error, or ours when it ran out of the memory it may
 * use. */
static int
render_fail_vips(const char *max_memory)
{
    const char *said = vips_error_buffer();
    if (strstr(said, "NoMemory") != NULL ||
        strstr(said, "out of memory") != NULL) {
        return render_fail("it needs more memory than vector_sources."
                           "max_memory allows (%s bytes)",
                           max_memory);
    }
    return render_fail("%s", said);
}

/* libvips' warnings ("error in tile 0 x 0") repeat what the error says:
 * the parent reads the child's stderr as its message. */
static void
render_quiet(const gchar *domain, GLogLevelFlags level, const gchar *message,
             gpointer data)
{
    (void)domain;
    (void)level;
    (void)message;
    (void)data;
}

int
render_source_main(int argc, char **argv)
{
    /* kiln render-source FORMAT MAX_PIXELS MAX_CPU_S MAX_MEMORY */
    if (argc != 5) {
        return render_fail("%s", "usage: kiln render-source svg|pdf "
                                 "MAX_PIXELS MAX_CPU_SECONDS MAX_MEMORY "
                                 "(kiln runs this itself)");
    }
    const char *format = argv[1];
    long long max_pixels = atoll(argv[2]);
    double cpu = atof(argv[3]);
    long long mem = atoll(argv[4]);
    rlim_t cpu_s = (rlim_t)(cpu < 1 ? 1 : cpu + 0.999);
    struct rlimit rl = {cpu_s, cpu_s + 1};
    if (setrlimit(RLIMIT_CPU, &rl) != 0) {
        return render_fail("cannot limit its CPU time: %s", strerror(errno));
    }
#if !defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer reserves terabytes of address space for its shadow
     * memory: the sanitizer build runs without this limit. */
    rl.rlim_cur = rl.rlim_max = (rlim_t)mem;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        return render_fail("cannot limit its memory: %s", strerror(errno));
    }
#else
    (void)mem;
#endif
    size_t cap = 1 << 16, len = 0;
    char *in = malloc(cap);
    for (;;) {
        if (in == NULL) {
            return render_fail("%s", "out of memory");
        }
        ssize_t n = read(0, in + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(in, cap);
            if (nb == NULL) {
                free(in);
                in = NULL;
                continue;
            }
            in = nb;
        }
    }
    vips_modules_hold();
    if (VIPS_INIT("kiln")) {
        return render_fail("%s", "cannot start libvips");
    }
    static const char *const modules[] = {"poppler"}; /* PDF */
    vips_modules_load(modules, 1);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE,
                      render_quiet, NULL);
    g_log_set_handler(NULL, G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE,
                      render_quiet, NULL);
    VipsImage *im = NULL;
    int rc;
    if (strcmp(format, "svg") == 0) {
        rc = vips_svgload_buffer(in, len, &im, NULL);
    } else if (strcmp(format, "pdf") == 0) {
        rc = vips_pdfload_buffer(in, len, &im, "page", 0, "n", 1, NULL);
    } else {
        return render_fail("unknown format \"%s\"", format);
    }
    if (rc != 0) {
        return render_fail_vips(argv[4]);
    }
    /* The header gives the size: the pixel limit is checked before a
     * pixel is rendered. */
    long long px = (long long)im->Xsize * im->Ysize;
    if (px > max_pixels) {
        char why[200];
        snprintf(why, sizeof why,
                 "it renders at %dx%d, %lld pixels, above the limit of %lld",
                 im->Xsize, im->Ysize, px, max_pixels);
        return render_fail("%s", why);
    }
    VipsTarget *t = vips_target_new_to_descriptor(1);
    if (t == NULL ||
        vips_pngsave_target(im, t, "compression", 0, "filter",
                            VIPS_FOREIGN_PNG_FILTER_NONE, NULL) != 0) {
        return render_fail_vips(argv[4]);
    }
    g_object_unref(t);
    g_object_unref(im);
    free(in);
    return 0;
}

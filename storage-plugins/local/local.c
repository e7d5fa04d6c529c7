/*
 * The "local" storage backend: a service's files live under one directory
 * (setting "root"). Reads hand libvips a VipsSource on the file; writes go
 * to an unnamed file (O_TMPFILE) in the destination directory; commit()
 * gives it a temporary name and renames that over the final name, so a
 * destination is whole or absent, and a server killed mid-write leaves
 * nothing behind (the kernel frees an unnamed file). Where the filesystem
 * has no O_TMPFILE, the file is created under a hidden temporary name.
 * Confinement to the root is done by confine.c.
 */
#define _GNU_SOURCE /* O_PATH */

#include "confine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln/plugin.h"

/* Mode of the files open_write() creates (umask applies). */
#define LOCAL_FILE_MODE 0644

/* Temporary names are ".<name>.kiln-XXXXXX"; NAME_MAX bounds them. */
#define LOCAL_TEMP_PREFIX "."
#define LOCAL_TEMP_SUFFIX ".kiln-"
#define LOCAL_TEMP_RANDOM 6
#define LOCAL_TEMP_TRIES 64
#define LOCAL_NAME_MAX 255

typedef struct local_settings {
    const char *root;
} local_settings;

/* One configured service's storage. */
typedef struct local_state {
    int root_fd; /* O_PATH | O_DIRECTORY */
} local_state;

/* One write between open_write() and commit()/abort(). */
typedef struct local_write {
    int dir_fd; /* destination directory, O_RDONLY so it can be fsynced */
    int fd;     /* the temporary file; the VipsTarget holds a dup */
    char *path; /* the job's path, for messages */
    char *name; /* final name inside dir_fd */
    char temp[LOCAL_NAME_MAX + 1];
} local_write;

static int local_init(kiln_plugin *self, const kiln_host_api *api,
                      kiln_error *err);
static int local_open(kiln_plugin *self, const void *settings, void **state,
                      kiln_error *err);
static void local_close(void *state);
static int local_open_read(void *state, const char *path, VipsSource **out,
                           kiln_error *err);
static int local_open_write(void *state, const char *path, VipsTarget **target,
                            void **handle, kiln_error *err);
static int local_commit(void *state, void *handle, kiln_error *err);
static void local_abort(void *state, void *handle);

const kiln_host_api *local_api;

static const kiln_param_spec local_settings_spec[] = {
    KILN_P_STRING(local_settings, root, NULL,
                  "directory that holds the service's files; every path "
                  "resolves inside it",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1),
};

static const kiln_storage local_storage = {
    .size = sizeof(kiln_storage),
    .name = "local",
    .summary = "files under a directory on this machine",
    .settings_size = sizeof(local_settings),
    .settings = local_settings_spec,
    .n_settings = KILN_N_ELEMENTS(local_settings_spec),
    .open = local_open,
    .close = local_close,
    .open_read = local_open_read,
    .open_write = local_open_write,
    .commit = local_commit,
    .abort = local_abort,
};

KILN_PLUGIN_DEFINE("storage-local", KILN_VERSION_STRING,
                   "local directory storage with paths confined to a root",
                   local_init, NULL);

static int
local_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    local_api = api;
    return api->register_storage(self, &local_storage, err);
}

/* mkdir -p: creates each missing directory of `dir`. The root comes from
 * the operator's configuration, so symlinks in it are followed. */
static int
local_mkdir_p(const char *dir, kiln_error *err)
{
    char q[LOCAL_QUOTE_MAX];
    char text[128];
    char *copy = strdup(dir);
    char *p;

    if (copy == NULL) {
        return local_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    p = copy;
    for (;;) {
        while (*p == '/') {
            p++;
        }
        p = strchr(p, '/');
        if (p != NULL) {
            *p = '\0';
        }
        if (mkdir(copy, LOCAL_DIR_MODE) != 0 && errno != EEXIST) {
            int e = errno;

            free(copy);
            return local_api->error_set(
                err, e == EACCES ? KILN_EPERM : KILN_EIO,
                "cannot create storage root %s: %s", local_quote(q, dir),
                local_strerror(e, text, sizeof text));
        }
        if (p == NULL) {
            break;
        }
        *p++ = '/';
    }
    free(copy);
    return KILN_OK;
}

static int
local_open(kiln_plugin *self, const void *settings, void **state,
           kiln_error *err)
{
    (void)self; /* a backend that makes no host call outside init */
    const local_settings *s = settings;
    char q[LOCAL_QUOTE_MAX];
    char text[128];
    local_state *st;
    int fd;
    int probe;
    int rc;

    *state = NULL;
    if (s->root == NULL || s->root[0] == '\0') {
        return local_api->error_set_param(err, KILN_EINVAL, "root",
                                          "empty storage root (expected a "
                                          "directory)");
    }
    rc = local_mkdir_p(s->root, err);
    if (rc != KILN_OK) {
        return rc;
    }
    fd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        return local_api->error_set(
            err, KILN_EIO, "cannot open storage root %s: %s",
            local_quote(q, s->root), local_strerror(e, text, sizeof text));
    }

    /* Fail at start-up, not on the first job, where openat2 is missing
     * (kernel before 5.6, or a seccomp filter that blocks it). */
    probe = local_open_beneath(fd, ".", O_PATH | O_DIRECTORY, 0);
    if (probe < 0) {
        int e = errno;

        close(fd);
        return local_api->error_set(err, KILN_EIO,
                                    "cannot use storage root %s: openat2 "
                                    "failed: %s (local storage needs linux "
                                    "5.6 or later)",
                                    local_quote(q, s->root),
                                    local_strerror(e, text, sizeof text));
    }
    close(probe);

    st = malloc(sizeof *st);
    if (st == NULL) {
        close(fd);
        return local_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    st->root_fd = fd;
    *state = st;
    return KILN_OK;
}

static void
local_close(void *state)
{
    local_state *st = state;

    if (st == NULL) {
        return;
    }
    close(st->root_fd);
    free(st);
}

static int
local_open_read(void *state, const char *path, VipsSource **out,
                kiln_error *err)
{
    local_state *st = state;
    char q[LOCAL_QUOTE_MAX];
    const char *rel;
    struct stat sb;
    VipsSource *source;
    int fd;
    int rc;

    *out = NULL;
    rc = local_path_check(path, &rel, err);
    if (rc != KILN_OK) {
        return rc;
    }
    /* O_NONBLOCK so that a FIFO planted in the root cannot hang a worker;
     * it is cleared once fstat has shown a regular file. */
    fd = local_open_beneath(st->root_fd, rel, O_RDONLY | O_NOCTTY | O_NONBLOCK,
                            0);
    if (fd < 0) {
        int e = errno;

        if (e == ENOENT || e == ENOTDIR) {
            return local_api->error_set(err, KILN_ENOTFOUND,
                                        "%s not found in storage",
                                        local_quote(q, path));
        }
        return local_error_errno(err, e, "cannot read", path);
    }
    if (fstat(fd, &sb) != 0) {
        int e = errno;

        close(fd);
        return local_error_errno(err, e, "cannot read", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return local_api->error_set(err, KILN_EINVAL,
                                    "source %s is not a regular file "
                                    "(expected an image file)",
                                    local_quote(q, path));
    }
    if (fcntl(fd, F_SETFL, 0) != 0) {
        int e = errno;

        close(fd);
        return local_error_errno(err, e, "cannot read", path);
    }

    /* libvips 8.14 dup()s the descriptor in vips_source_build() and
     * closes its copy when the source is finalized, so ours is closed
     * here in every case. */
    source = vips_source_new_from_descriptor(fd);
    close(fd);
    if (source == NULL) {
        return local_api->error_set_vips(err, "cannot read source");
    }
    *out = source;
    return KILN_OK;
}

/* Fills w->temp with ".<name>.kiln-XXXXXX", cutting <name> so that the
 * result fits NAME_MAX; the random part is redrawn by every call. */
static void
local_temp_name(local_write *w, const char *name)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[LOCAL_TEMP_RANDOM];
    size_t room = LOCAL_NAME_MAX - strlen(LOCAL_TEMP_PREFIX) -
                  strlen(LOCAL_TEMP_SUFFIX) - LOCAL_TEMP_RANDOM;
    size_t n = strlen(name);
    size_t i;
    char *p;

    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        /* Only uniqueness matters (O_EXCL guards it), not secrecy. */
        struct timespec ts;
        unsigned long x;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16) ^
            (unsigned long)(uintptr_t)w;
        for (i = 0; i < sizeof rnd; i++) {
            rnd[i] = (unsigned char)(x >> (i * 5));
        }
    }
    if (n > room) {
        n = room;
    }
    p = w->temp;
    memcpy(p, LOCAL_TEMP_PREFIX, strlen(LOCAL_TEMP_PREFIX));
    p += strlen(LOCAL_TEMP_PREFIX);
    memcpy(p, name, n);
    p += n;
    memcpy(p, LOCAL_TEMP_SUFFIX, strlen(LOCAL_TEMP_SUFFIX));
    p += strlen(LOCAL_TEMP_SUFFIX);
    for (i = 0; i < sizeof rnd; i++) {
        *p++ = alphabet[rnd[i] % (sizeof alphabet - 1)];
    }
    *p = '\0';
}

/* Frees a write handle: closes its descriptors, unlinks the temporary
 * file when `unlink_temp`. */
static void
local_write_free(local_write *w, bool unlink_temp)
{
    if (w->fd >= 0) {
        close(w->fd);
    }
    if (unlink_temp && w->temp[0] != '\0') {
        (void)unlinkat(w->dir_fd, w->temp, 0);
    }
    if (w->dir_fd >= 0) {
        close(w->dir_fd);
    }
    free(w->path);
    free(w->name);
    free(w);
}

static int
local_open_write(void *state, const char *path, VipsTarget **target,
                 void **handle, kiln_error *err)
{
    local_state *st = state;
    char q[LOCAL_QUOTE_MAX];
    const char *rel;
    const char *name;
    struct stat sb;
    local_write *w;
    int probe;
    int tries;
    int rc;

    *target = NULL;
    *handle = NULL;
    rc = local_path_check(path, &rel, err);
    if (rc != KILN_OK) {
        return rc;
    }

    w = calloc(1, sizeof *w);
    if (w == NULL) {
        return local_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    w->dir_fd = -1;
    w->fd = -1;

    rc = local_open_parent(st->root_fd, rel, path, &w->dir_fd, &name, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    w->path = strdup(path);
    w->name = strdup(name);
    if (w->path == NULL || w->name == NULL) {
        rc = local_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }

    /* A symlink as the last component: renameat would replace the link,
     * never write through it, so nothing could escape; still, refuse one
     * that leads out of the root, like reads do. Resolved from the root
     * (not dir_fd) so a relative link to a sibling directory works. */
    probe = local_open_beneath(st->root_fd, rel, O_PATH, 0);
    if (probe >= 0) {
        close(probe);
    } else if (errno == EXDEV || errno == ELOOP) {
        rc = local_error_errno(err, errno, "cannot write", path);
        goto fail;
    }

    /* Refuse now what renameat would refuse at commit. */
    if (fstatat(w->dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(sb.st_mode)) {
        rc = local_api->error_set(err, KILN_EINVAL,
                                  "destination %s is a directory (expected "
                                  "a file path)",
                                  local_quote(q, path));
        goto fail;
    }

    /* First choice: an unnamed file, named only at commit. */
    w->fd = openat(w->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC,
                   LOCAL_FILE_MODE);
    /* Otherwise the temporary name is one component created in a
     * confined directory with O_EXCL, which never follows a symlink. */
    for (tries = 0; w->fd < 0 && tries < LOCAL_TEMP_TRIES; tries++) {
        local_temp_name(w, name);
        w->fd = openat(w->dir_fd, w->temp,
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                       LOCAL_FILE_MODE);
        if (w->fd >= 0 || errno != EEXIST) {
            break;
        }
    }
    if (w->fd < 0) {
        rc = local_error_errno(err, errno, "cannot create", path);
        w->temp[0] = '\0';
        goto fail;
    }

    /* Like the source, the target dup()s the descriptor; ours stays in
     * the handle so commit() can fsync the file. */
    *target = vips_target_new_to_descriptor(w->fd);
    if (*target == NULL) {
        rc = local_api->error_set_vips(err, "cannot write destination");
        goto fail;
    }
    *handle = w;
    return KILN_OK;

fail:
    local_write_free(w, true);
    return rc;
}

/* Gives the unnamed file a temporary name in its directory (linkat
 * cannot replace an existing name; the rename that follows can). Through
 * /proc first, which needs no privilege; AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH. Returns 0 or -1 with errno. */
static int
local_link_unnamed(local_write *w)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
    for (int tries = 0; tries < LOCAL_TEMP_TRIES; tries++) {
        local_temp_name(w, w->name);
        if (linkat(AT_FDCWD, proc, w->dir_fd, w->temp, AT_SYMLINK_FOLLOW) ==
                0 ||
            (errno == ENOENT &&
             linkat(w->fd, "", w->dir_fd, w->temp, AT_EMPTY_PATH) == 0)) {
            return 0;
        }
        if (errno != EEXIST) {
            w->temp[0] = '\0';
            return -1;
        }
    }
    w->temp[0] = '\0';
    errno = EEXIST;
    return -1;
}

/* Always consumes the handle: on failure the temporary file is removed
 * and the destination keeps its previous content (or stays absent). */
static int
local_commit(void *state, void *handle, kiln_error *err)
{
    local_write *w = handle;
    int rc;

    (void)state;
    if (fsync(w->fd) != 0) {
        rc = local_error_errno(err, errno, "cannot write", w->path);
        goto fail;
    }
    if (w->temp[0] == '\0' && local_link_unnamed(w) != 0) {
        rc = local_error_errno(err, errno, "cannot write", w->path);
        goto fail;
    }
    if (renameat(w->dir_fd, w->temp, w->dir_fd, w->name) != 0) {
        rc = local_error_errno(err, errno, "cannot write", w->path);
        goto fail;
    }
    w->temp[0] = '\0';
    /* Make the rename itself durable. */
    if (fsync(w->dir_fd) != 0) {
        rc = local_error_errno(err, errno, "cannot write", w->path);
        goto fail;
    }
    local_write_free(w, false);
    return KILN_OK;

fail:
    local_write_free(w, true);
    return rc;
}

static void
local_abort(void *state, void *handle)
{
    (void)state;
    if (handle != NULL) {
        local_write_free(handle, true);
    }
}

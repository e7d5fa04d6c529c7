/*
 * Path confinement for the "local" storage backend. Every file the backend
 * touches is reached through openat2(2) relative to the root's directory
 * descriptor, so the kernel resolves each component (symlinks included)
 * and refuses any step out of the root: there is no check-then-open race.
 * local.c calls these helpers from its storage callbacks.
 */
#define _GNU_SOURCE /* O_PATH, syscall(), the GNU strerror_r */

#include "confine.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Why RESOLVE_BENEATH and not RESOLVE_IN_ROOT: IN_ROOT treats the root
 * as "/" and clamps "..", so "/../etc/passwd" or a symlink to /etc/passwd
 * would silently open root/etc/passwd. The contract is to refuse such
 * paths (KILN_EPERM), which BENEATH does by failing with EXDEV. A side
 * effect: absolute symlinks are refused even when they point back inside
 * the root; relative symlinks that stay inside work. NO_MAGICLINKS is
 * spelled out because BENEATH blocking /proc magic links is documented as
 * subject to change. Mount points inside the root are allowed (no
 * RESOLVE_NO_XDEV): an operator may mount a volume there. */
#define LOCAL_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

/* openat2 returns EAGAIN when a rename raced with a ".." lookup. */
#define LOCAL_MAX_RETRIES 16

const char *
local_quote(char out[LOCAL_QUOTE_MAX], const char *s)
{
    return local_api->quote(out, LOCAL_QUOTE_MAX, s);
}

const char *
local_strerror(int e, char *buf, size_t size)
{
    const char *text = strerror_r(e, buf, size);

    if (text != buf) {
        snprintf(buf, size, "%s", text);
    }
    if (buf[0] != '\0') {
        buf[0] = (char)tolower((unsigned char)buf[0]);
    }
    return buf;
}

int
local_path_check(const char *path, const char **rel, kiln_error *err)
{
    char q[LOCAL_QUOTE_MAX];
    const char *p;
    const char *last;
    size_t len;
    long depth = 0;

    /* A C string cannot carry a NUL inside it: the host's JSON decoder
     * must refuse "\u0000" in a path before it gets here. */
    if (path == NULL || path[0] == '\0') {
        return local_api->error_set(err, KILN_EINVAL,
                                    "empty path (expected a file path such "
                                    "as \"/in/a.jpg\")");
    }
    len = strlen(path);
    if (len >= PATH_MAX) {
        return local_api->error_set(err, KILN_EINVAL,
                                    "path %s is too long (expected at most "
                                    "%d bytes)",
                                    local_quote(q, path), PATH_MAX - 1);
    }
    if (path[len - 1] == '/') {
        return local_api->error_set(err, KILN_EINVAL,
                                    "path %s ends with \"/\" (expected a "
                                    "file name after the last \"/\")",
                                    local_quote(q, path));
    }

    p = path;
    while (*p == '/') {
        p++;
    }
    *rel = p;

    /* Walk the components: ".." above the root is an escape whatever
     * exists on disk. */
    last = p;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

        if (n == 2 && p[0] == '.' && p[1] == '.') {
            depth--;
            if (depth < 0) {
                return local_api->error_set(err, KILN_EPERM,
                                            "path %s escapes the storage root",
                                            local_quote(q, path));
            }
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        last = p;
        p += n;
        while (*p == '/') {
            p++;
        }
    }

    if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0) {
        return local_api->error_set(err, KILN_EINVAL,
                                    "path %s does not name a file (expected "
                                    "a file name after the last \"/\")",
                                    local_quote(q, path));
    }
    return KILN_OK;
}

int
local_open_beneath(int dir_fd, const char *rel, int flags, mode_t mode)
{
    struct open_how how;
    int tries;

    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    /* openat2 insists on a zero mode unless a file may be created. */
    how.mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0;
    how.resolve = LOCAL_RESOLVE;

    for (tries = 0; tries < LOCAL_MAX_RETRIES; tries++) {
        long fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof how);

        if (fd >= 0) {
            return (int)fd;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    return -1;
}

int
local_error_errno(kiln_error *err, int e, const char *what, const char *path)
{
    char q[LOCAL_QUOTE_MAX];
    char text[128];
    int code;

    switch (e) {
    case EXDEV:
        return local_api->error_set(err, KILN_EPERM,
                                    "path %s escapes the storage root",
                                    local_quote(q, path));
    case ELOOP:
        return local_api->error_set(err, KILN_EPERM,
                                    "path %s has too many levels of symbolic "
                                    "links or goes through a refused link "
                                    "(expected a path inside the storage "
                                    "root)",
                                    local_quote(q, path));
    case ENOSYS:
        return local_api->error_set(err, KILN_EIO,
                                    "%s %s: openat2 is not available (local "
                                    "storage needs linux 5.6 or later)",
                                    what, local_quote(q, path));
    case EACCES:
    case EPERM:
        code = KILN_EPERM;
        break;
    case ENOENT:
    case ENOTDIR:
        code = KILN_ENOTFOUND;
        break;
    case ENAMETOOLONG:
        code = KILN_EINVAL;
        break;
    default:
        code = KILN_EIO;
        break;
    }
    return local_api->error_set(err, code, "%s %s: %s", what,
                                local_quote(q, path),
                                local_strerror(e, text, sizeof text));
}

int
local_open_parent(int root_fd, const char *rel, const char *path, int *dir_fd,
                  const char **name, kiln_error *err)
{
    char prefix[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    size_t parent_len;
    size_t pos;
    int prev_fd = -1; /* the directory of the previous prefix */
    int fd;

    *dir_fd = -1;
    if (slash == NULL) {
        *name = rel;
        fd = local_open_beneath(root_fd, ".", O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0) {
            return local_error_errno(err, errno, "cannot open the directory of",
                                     path);
        }
        *dir_fd = fd;
        return KILN_OK;
    }

    *name = slash + 1;
    parent_len = (size_t)(slash - rel);
    /* local_path_check bounded the whole path by PATH_MAX. */
    memcpy(prefix, rel, parent_len);
    prefix[parent_len] = '\0';

    /* The common case: the directory is already there. */
    fd = local_open_beneath(root_fd, prefix, O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0) {
        *dir_fd = fd;
        return KILN_OK;
    }
    if (errno != ENOENT) {
        return local_error_errno(err, errno, "cannot open the directory of",
                                 path);
    }

    /* Walk prefix by prefix. Each prefix is resolved from the root with
     * openat2, so a symlinked component is followed by the kernel and
     * refused if it leads out; a missing component is created with
     * mkdirat relative to the descriptor of its (already confined) parent,
     * which cannot follow a symlink in the new name. */
    pos = 0;
    while (pos < parent_len) {
        size_t start;
        char saved;

        while (pos < parent_len && prefix[pos] == '/') {
            pos++;
        }
        if (pos == parent_len) {
            break;
        }
        start = pos;
        while (pos < parent_len && prefix[pos] != '/') {
            pos++;
        }
        saved = prefix[pos];
        prefix[pos] = '\0';

        fd = local_open_beneath(root_fd, prefix, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0 && errno == ENOENT) {
            int base = prev_fd >= 0 ? prev_fd : root_fd;

            if (mkdirat(base, prefix + start, LOCAL_DIR_MODE) != 0 &&
                errno != EEXIST) {
                int e = errno;

                prefix[pos] = saved;
                if (prev_fd >= 0) {
                    close(prev_fd);
                }
                return local_error_errno(
                    err, e, "cannot create the directories of", path);
            }
            /* EEXIST: a racing writer made it, or it is a dangling
             * symlink, which the second open reports. */
            fd = local_open_beneath(root_fd, prefix, O_RDONLY | O_DIRECTORY, 0);
        }
        prefix[pos] = saved;
        if (fd < 0) {
            int e = errno;

            if (prev_fd >= 0) {
                close(prev_fd);
            }
            return local_error_errno(err, e, "cannot create the directories of",
                                     path);
        }
        if (prev_fd >= 0) {
            close(prev_fd);
        }
        prev_fd = fd;
    }

    if (prev_fd < 0) {
        /* Only slashes before the name: local_path_check skipped leading
         * ones, so this cannot happen; open the root to be safe. */
        prev_fd = local_open_beneath(root_fd, ".", O_RDONLY | O_DIRECTORY, 0);
        if (prev_fd < 0) {
            return local_error_errno(err, errno, "cannot open the directory of",
                                     path);
        }
    }
    *dir_fd = prev_fd;
    return KILN_OK;
}

/*
 * Path confinement for the "local" storage backend: checks a job's path,
 * opens files and directories strictly beneath the storage root with
 * openat2(2), and turns errno values into kiln errors. local.c builds the
 * storage callbacks on top of it. Everything here is hidden in the .so.
 */
#ifndef KILN_STORAGE_PLUGINS_LOCAL_CONFINE_H
#define KILN_STORAGE_PLUGINS_LOCAL_CONFINE_H

#include <sys/types.h>

#include "kiln/plugin.h"

/* Room for a quoted path in a message: the quotes, escapes and an
 * ellipsis for a long path. */
#define LOCAL_QUOTE_MAX 320

/* Mode of the directories open_write() creates (umask applies). */
#define LOCAL_DIR_MODE 0755

/* The host table handed to init(); set once before any callback runs. */
extern const kiln_host_api *local_api;

/* Writes `s` into out as a double-quoted string, escaping quotes,
 * backslashes and control bytes, and cutting a long one with "...", so
 * a hostile path cannot forge log lines. Returns out. */
const char *local_quote(char out[LOCAL_QUOTE_MAX], const char *s);

/* Checks a path given by a job and sets *rel to its part relative to the
 * root (leading slashes skipped: "/a/b.jpg" means root/a/b.jpg). Refuses
 * with KILN_EINVAL an empty path, one that ends in "/" and an overlong
 * one, and with KILN_EPERM one whose ".." components climb above the root
 * (checked lexically, so the answer does not depend on what exists; the
 * kernel checks again while resolving). */
int local_path_check(const char *path, const char **rel, kiln_error *err);

/* openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS relative to
 * dir_fd, retrying on EINTR and EAGAIN. Returns the new descriptor
 * (O_CLOEXEC is added) or -1 with errno set; EXDEV means the path
 * escapes dir_fd. */
int local_open_beneath(int dir_fd, const char *rel, int flags, mode_t mode);

/* Opens the directory that will hold `rel` (a path from
 * local_path_check), creating missing directories beneath root_fd one
 * mkdirat() at a time, each relative to a directory descriptor that was
 * itself opened beneath the root. On success *dir_fd is an
 * O_RDONLY|O_DIRECTORY descriptor (fsync-able) the caller closes and
 * *name points at the last component inside `rel`. `path` is the job's
 * text, for messages. */
int local_open_parent(int root_fd, const char *rel, const char *path,
                      int *dir_fd, const char **name, kiln_error *err);

/* Sets err from errno value `e` for an operation on the job path `path`;
 * `what` says what was attempted ("cannot read"). EXDEV and ELOOP become
 * an escape refusal (KILN_EPERM), EACCES/EPERM KILN_EPERM,
 * ENOENT/ENOTDIR KILN_ENOTFOUND, anything else KILN_EIO. Returns the
 * code. */
int local_error_errno(kiln_error *err, int e, const char *what,
                      const char *path);

/* Copies strerror(e) into buf with its first letter in lower case (kiln
 * messages are lower case). Returns buf. */
const char *local_strerror(int e, char *buf, size_t size);

#endif /* KILN_STORAGE_PLUGINS_LOCAL_CONFINE_H */

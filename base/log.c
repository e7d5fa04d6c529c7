/*
 * The log (host.h): one line per event on standard error, as text
 * ("2026-12-07T19:05:00.123Z info request method=GET status=200 ...") or
 * as one JSON object per line, at or above the configured level
 * (config `log`; KILN_DEBUG forces debug). journald or a container
 * runtime takes it from there. A line is written whole (the stream is
 * locked for it), so lines of several threads never mix. Values are
 * escaped in both formats: a client's text cannot forge a line.
 */
#include "host.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int log_json;
static atomic_int log_level = KILN_LOG_INFO;
static atomic_int log_ready; /* log_setup ran, or the default was read */

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void
log_setup(bool json, kiln_log_level level)
{
    if (getenv("KILN_DEBUG") != NULL) {
        level = KILN_LOG_DEBUG;
    }
    atomic_store(&log_json, json);
    atomic_store(&log_level, (int)level);
    atomic_store(&log_ready, 1);
}

bool
log_enabled(kiln_log_level level)
{
    if (!atomic_load(&log_ready)) {
        /* Before any configuration (kiln run, compile): text, info, or
         * debug with KILN_DEBUG. */
        if (getenv("KILN_DEBUG") != NULL) {
            atomic_store(&log_level, KILN_LOG_DEBUG);
        }
        atomic_store(&log_ready, 1);
    }
    return (int)level <= atomic_load(&log_level);
}

int
log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, log_names[i]) == 0) {
            return i;
        }
    }
    return strcmp(name, "warning") == 0 ? KILN_LOG_WARN : -1;
}

/* Writes s escaped: for JSON inside quotes; for text, quoted when it has
 * a space, a quote, '=' or a control byte. */
static void
log_string(FILE *f, const char *s, bool json)
{
    s = s != NULL ? s : "";
    bool quote = json || s[0] == '\0' || strpbrk(s, " \"=\\") != NULL;
    for (const char *p = s; !quote && *p != '\0'; p++) {
        quote = (unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f;
    }
    if (quote) {
        fputc('"', f);
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (!quote) {
            fputc(*p, f);
        } else if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    if (quote) {
        fputc('"', f);
    }
}

static void
log_begin(FILE *f, kiln_log_level level, const char *event, bool json)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    const char *name = log_names[level <= KILN_LOG_DEBUG ? level : 3];
    if (json) {
        fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":", when, name);
        log_string(f, event, true);
    } else {
        fprintf(f, "%s %s ", when, name);
        log_string(f, event, false);
    }
}

static void
log_field_write(FILE *f, const log_field *fl, bool json)
{
    if (json) {
        fputc(',', f);
        log_string(f, fl->key, true);
        fputc(':', f);
    } else {
        fprintf(f, " %s=", fl->key);
    }
    if (fl->is_num) {
        if (!isfinite(fl->num)) {
            fputs(json ? "null" : "-", f);
        } else if (fl->num == floor(fl->num) && fabs(fl->num) < 1e15) {
            fprintf(f, "%.0f", fl->num);
        } else {
            fprintf(f, "%.1f", fl->num);
        }
    } else if (fl->str == NULL && json) {
        fputs("null", f);
    } else {
        log_string(f, fl->str != NULL ? fl->str : "-", json);
    }
}

void
log_event(kiln_log_level level, const char *event, const log_field *fields,
          size_t n)
{
    if (!log_enabled(level)) {
        return;
    }
    bool json = atomic_load(&log_json) != 0;
    flockfile(stderr);
    log_begin(stderr, level, event, json);
    for (size_t i = 0; i < n; i++) {
        log_field_write(stderr, &fields[i], json);
    }
    fputs(json ? "}\n" : "\n", stderr);
    funlockfile(stderr);
}

void
log_vmsg(kiln_log_level level, const char *event, const log_field *first,
         const char *fmt, va_list ap)
{
    if (!log_enabled(level)) {
        return;
    }
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    log_field f[2] = {LOG_S("msg", msg)};
    size_t n = 1;
    if (first != NULL) {
        f[0] = *first;
        f[1] = LOG_S("msg", msg);
        n = 2;
    }
    log_event(level, event, f, n);
}

void
log_msg(kiln_log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, event, NULL, fmt, ap);
    va_end(ap);
}

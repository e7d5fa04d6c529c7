/*
 * annotation's font lookup (ops.md section 5, "Font"), shared by every
 * pixel backend that draws text (ops-vips' annotation.c, backend-magick's)
 * so that all of them resolve a family the same way and warn alike: the
 * family is matched with fontconfig, ignoring case; when it is not
 * installed, fontconfig's best match is drawn and named in the warning.
 * No libvips call; fontconfig and GLib only.
 */
#ifndef KILN_PLUGINS_OPS_VIPS_FONTMATCH_H
#define KILN_PLUGINS_OPS_VIPS_FONTMATCH_H

#include <stdbool.h>
#include <stdio.h>

#include <fontconfig/fontconfig.h>
#include <glib.h>

#include "kiln/plugin.h"

/* True for the generic families: fontconfig aliases, never installed
 * under that name, that name no font in particular; using them is not a
 * fallback. */
static inline bool
ops_font_is_generic(const char *family)
{
    static const char *const generic[] = {
        "serif",   "sans-serif", "sans",  "monospace", "mono", "cursive",
        "fantasy", "system-ui",  "emoji", "math",      NULL};

    for (int i = 0; generic[i] != NULL; i++) {
        if (g_ascii_strcasecmp(family, generic[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Resolves `want` through fontconfig into `used` (a family name of the
 * best-matching font: `want` itself, in the font's spelling, when some
 * family name of the match equals it ignoring case). *is_fallback is true
 * when the family is not installed and is not a generic alias. With
 * `file` not NULL, also the matched font's file (empty when fontconfig
 * gives none) and *index its face in that file. KILN_OK, or KILN_ENOMEM,
 * or KILN_EINVAL at "font" when fontconfig knows no font at all.
 */
static inline int
ops_font_match(const kiln_host_api *api, const char *want, char *used, size_t n,
               char *file, size_t file_n, int *index, bool *is_fallback,
               kiln_error *err)
{
    /* Serialises this plugin's fontconfig queries (fontconfig's thread
     * safety has varied between versions; a match costs microseconds). */
    static GMutex lock;
    FcPattern *pat;
    FcPattern *match = NULL;
    FcResult result;
    FcChar8 *family;
    FcChar8 *path;
    bool is_installed = false;
    int rc = KILN_OK;

    used[0] = '\0';
    if (file != NULL) {
        file[0] = '\0';
        *index = 0;
    }
    g_mutex_lock(&lock);
    pat = FcPatternCreate();
    if (pat == NULL ||
        !FcPatternAddString(pat, FC_FAMILY, (const FcChar8 *)want) ||
        !FcConfigSubstitute(NULL, pat, FcMatchPattern)) {
        rc = api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    FcDefaultSubstitute(pat);
    match = FcFontMatch(NULL, pat, &result);
    /* A font lists every family name it answers to (localised names,
     * "DejaVu Sans" and "DejaVu Sans Condensed"); any of them counts. */
    for (int i = 0; match != NULL; i++) {
        if (FcPatternGetString(match, FC_FAMILY, i, &family) != FcResultMatch) {
            break;
        }
        if (i == 0 || FcStrCmpIgnoreCase(family, (const FcChar8 *)want) == 0) {
            snprintf(used, n, "%s", (const char *)family);
        }
        if (FcStrCmpIgnoreCase(family, (const FcChar8 *)want) == 0) {
            is_installed = true;
            break;
        }
    }
    if (used[0] == '\0') {
        rc = api->error_set_param(err, KILN_EINVAL, "font",
                                  "no font matches \"%s\" (fontconfig "
                                  "found no fonts at all)",
                                  want);
        goto done;
    }
    if (file != NULL &&
        FcPatternGetString(match, FC_FILE, 0, &path) == FcResultMatch) {
        snprintf(file, file_n, "%s", (const char *)path);
        if (FcPatternGetInteger(match, FC_INDEX, 0, index) != FcResultMatch) {
            *index = 0;
        }
    }
    *is_fallback = !is_installed && !ops_font_is_generic(want);

done:
    if (match != NULL) {
        FcPatternDestroy(match);
    }
    if (pat != NULL) {
        FcPatternDestroy(pat);
    }
    g_mutex_unlock(&lock);
    return rc;
}

#endif /* KILN_PLUGINS_OPS_VIPS_FONTMATCH_H */

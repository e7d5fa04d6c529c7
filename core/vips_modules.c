/*
 * libvips' loadable modules: only the ones kiln uses. At start-up libvips
 * opens every module in its modules directory (heif, jxl, magick,
 * openslide, poppler on Debian): about 15 ms of a 40 ms `kiln run`, and
 * ImageMagick's and poppler's libraries mapped into a process that refuses
 * their formats anyway (source_format.c). libvips finds the directory
 * under $VIPSHOME/lib when VIPSHOME is set, so kiln points it at a
 * directory that does not exist before libvips starts, then opens the
 * modules it needs from the directory the build found (KILN_VIPS_MODULE_DIR):
 * vips-heif (AVIF, HEIC) in kiln, vips-poppler (PDF) in the renderer child.
 * An operator who sets VIPSHOME keeps libvips' own behaviour.
 */
#include "../base/host.h"

#include <gmodule.h>
#include <stdlib.h>

#ifndef KILN_VIPS_MODULE_DIR
#define KILN_VIPS_MODULE_DIR ""
#endif

/* Not a directory: nothing is found under it. */
#define VIPS_MODULES_NOWHERE "/nonexistent/kiln-loads-its-own-vips-modules"

static bool vips_modules_held;

void
vips_modules_hold(void)
{
    if (getenv("VIPSHOME") == NULL && KILN_VIPS_MODULE_DIR[0] != '\0') {
        vips_modules_held = setenv("VIPSHOME", VIPS_MODULES_NOWHERE, 1) == 0;
    }
}

void
vips_modules_load(const char *const *names, size_t n)
{
    if (!vips_modules_held) {
        return; /* libvips loaded its modules itself */
    }
    /* Children (the renderer) start from the environment as it was. */
    unsetenv("VIPSHOME");
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/vips-%s.so", KILN_VIPS_MODULE_DIR,
                 names[i]);
        /* A libvips built without the module: its formats stay unknown,
         * as they would be with libvips' own loading. */
        GModule *m = g_module_open(path, G_MODULE_BIND_LAZY);
        if (m != NULL) {
            g_module_make_resident(m);
        }
    }
}

/*
 * Helpers shared by the unit test files (unit.h).
 */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

kiln_config *
unit_config(void)
{
    kiln_config *c = NULL;
    kiln_error err;
    err_clear(&err);
    if (config_default(&c, &err) != KILN_OK) {
        return NULL;
    }
    /* The built plugins, wherever this test binary runs from. */
    const char *dir = getenv("KILN_PLUGIN_DIR");
    for (size_t i = 0; i < c->n_plugin_dirs; i++) {
        free(c->plugin_dirs[i]);
    }
    c->plugin_dirs[0] = strdup(dir ? dir : "build/plugins");
    c->n_plugin_dirs = 1;
    return c;
}

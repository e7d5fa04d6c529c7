/* Loader refusal: a shared object that exports no kiln_plugin_descriptor_v2. */
#include "kiln/plugin.h"

KILN_EXPORT int kiln_test_no_descriptor(void);

/* Exported so the object is not empty; the loader must never call it. */
KILN_EXPORT int
kiln_test_no_descriptor(void)
{
    return 0;
}

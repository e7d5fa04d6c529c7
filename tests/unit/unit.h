/*
 * What several unit test files share: the configuration of a real engine
 * (the built plugins, wherever the test binary runs from).
 */
#ifndef KILN_TESTS_UNIT_H
#define KILN_TESTS_UNIT_H

#include "../../core/kiln.h"

/* The embedded defaults, loading plugins from KILN_PLUGIN_DIR (default
 * build/plugins) only; NULL when they cannot be made. */
kiln_config *unit_config(void);

#endif /* KILN_TESTS_UNIT_H */

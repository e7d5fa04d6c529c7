/*
 * kiln version numbers, for plugins that want to print or check them.
 * The ABI version a plugin is checked against lives in plugin.h.
 */
#ifndef KILN_VERSION_H
#define KILN_VERSION_H

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.1.0"

#endif /* KILN_VERSION_H */

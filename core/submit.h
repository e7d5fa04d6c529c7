/*
 * kiln submit: the HTTP API's client on the command line (submit.c). A
 * separate header so that main.c sees the one entry point and nothing of
 * libcurl.
 */
#ifndef KILN_CORE_SUBMIT_H
#define KILN_CORE_SUBMIT_H

#include "cli.h"

/* Its arguments and options, for `kiln --help` and `kiln submit --help`. */
extern const cli_command submit_command;

/* Runs `kiln submit [OPTIONS] REQUEST.json`; argv[0] is "submit". Posts
 * the request to a running server and prints the process id, or with
 * --wait the final status body. Returns the exit status: 0 submitted (or
 * FINISHED with --wait), 1 refused, unreachable or FAILED, 2 usage error,
 * 3 --timeout reached. Messages go to stderr; the token is never printed. */
int cmd_submit(int argc, char **argv);

#endif

/*
 * The command line's option tables (cli.c). Each command declares its
 * arguments and options once, with their defaults and help; the same table
 * drives getopt_long (options anywhere on the line, "--" ends them),
 * `kiln COMMAND --help` and the message for an unknown option. main.c and
 * submit.c (which has no libvips) both use it.
 */
#ifndef KILN_CORE_CLI_H
#define KILN_CORE_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* The most options one command may declare (--help not counted). */
#define CLI_MAX_OPTIONS 16

/* One option. Every option has a long name; `letter` adds a short form
 * whose value follows it directly (-O2). */
typedef struct cli_option {
    const char *name; /* the long name, without "--" */
    char letter;      /* the short form, or 0 */
    const char *arg;  /* the value's name in help ("FILE"); NULL: a switch */
    const char *help; /* what it does */
    const char *dflt; /* the default in words; NULL when there is none */
} cli_option;

/* One operand, as help names it ("REQUEST.json..."). */
typedef struct cli_operand {
    const char *name;
    const char *help;
} cli_operand;

typedef struct cli_command {
    const char *name;
    const char *summary;         /* one line, for `kiln --help` */
    const char *doc;             /* what it does; '\n' breaks a line */
    const cli_operand *operands; /* ends with a NULL name; may be NULL */
    /* How many operands it takes (max -1: any number), and how a
     * message says it ("one REQUEST.json"). */
    int min_operands, max_operands;
    const char *expected;
    const cli_option *options; /* ends with a NULL name; may be NULL */
    const char *exit_status;   /* NULL: 0 success, 1 failure, 2 usage */
} cli_command;

/* What cli_parse found. */
typedef struct cli_args {
    const cli_command *cmd;
    /* Per option, in table order: its value ("" for a switch), or NULL
     * when it was not given. The last of repeated options wins. */
    const char *value[CLI_MAX_OPTIONS];
    char **operands; /* the operands in order, pointing into argv */
    int n_operands;
} cli_args;

/* cli_parse's answer when the command is to go on. */
#define CLI_GO_ON (-1)

/* Parses argv (argv[0] is the command's name) against cmd's options and
 * counts its operands. Options may stand before, between or after the
 * operands; "--" ends them, and "-" is an operand. Reorders argv so that
 * the operands come last, in their order. Returns CLI_GO_ON, or the exit
 * status to end with: 0 after printing the command's help on stdout (-h,
 * --help), 2 after a one-line message on stderr that names the bad option
 * or says how many operands were expected, and points to --help. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *out);

/* The value of option `name` (its long name), or NULL when not given.
 * Asking for a name the command does not declare is a programmer
 * error. */
const char *cli_get(const cli_args *a, const char *name);

/* `kiln NAME --help`: usage, what it does, arguments, every option with
 * its default, exit status. */
void cli_print_help(const cli_command *cmd, FILE *f);

/* Prints a one-line usage error for cmd ("kiln NAME: MESSAGE; see kiln
 * NAME --help") on stderr and returns the usage exit status, 2. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints `text` on f word-wrapped to 78 columns: each line at column
 * `indent`, the first continuing from column `col` where the caller left
 * the cursor. A '\n' in text breaks the line; two leave a blank line. */
void cli_wrap(FILE *f, const char *text, int indent, int col);

#endif

/*
 * The command line's option tables (cli.h): parsing with getopt_long from
 * a command's table, its --help text, and one-line messages for unknown,
 * ambiguous or incomplete options. getopt runs in "return in order" mode
 * so that options are found anywhere on the line whatever
 * POSIXLY_CORRECT says; the operands are collected here.
 */
#include "cli.h"

#include <assert.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../base/host.h"

/* Columns: help text wraps at CLI_WIDTH; option help starts at
 * CLI_HELP_COL. Long options without a letter get values from here up. */
#define CLI_WIDTH 78
#define CLI_HELP_COL 24
#define CLI_LONG_VAL 256

static void cli_print_option(FILE *f, char letter, const char *name,
                             const char *arg, const char *help,
                             const char *dflt);

void
cli_wrap(FILE *f, const char *text, int indent, int col)
{
    bool is_fresh = col <= indent; /* no word on this line yet */
    const char *p = text;
    while (*p != '\0') {
        p += strspn(p, " ");
        if (*p == '\n') {
            /* The first newline ends a line of words, a second one (at
             * the start of a line) leaves a blank line. */
            fputc('\n', f);
            col = 0;
            is_fresh = true;
            p++;
            continue;
        }
        size_t n = strcspn(p, " \n");
        if (n == 0) {
            break;
        }
        if (!is_fresh && col + 1 + (int)n > CLI_WIDTH) {
            fputc('\n', f);
            col = 0;
            is_fresh = true;
        }
        if (is_fresh) {
            col += fprintf(f, "%*s", indent > col ? indent - col : 0, "");
        } else {
            col += fprintf(f, " ");
        }
        col += fprintf(f, "%.*s", (int)n, p);
        is_fresh = false;
        p += n;
    }
    if (!is_fresh) {
        fputc('\n', f);
    }
}

/* One option's lines: "  -O, --optimize LEVEL  help (default: ...)". */
static void
cli_print_option(FILE *f, char letter, const char *name, const char *arg,
                 const char *help, const char *dflt)
{
    int col = letter != 0 ? fprintf(f, "  -%c, --%s", letter, name)
                          : fprintf(f, "  --%s", name);
    if (arg != NULL) {
        col += fprintf(f, " %s", arg);
    }
    if (col + 2 > CLI_HELP_COL) {
        fputc('\n', f);
        col = 0;
    }
    size_t n = strlen(help) + (dflt != NULL ? strlen(dflt) + 16 : 0) + 1;
    char *text = malloc(n);
    if (text == NULL) {
        cli_wrap(f, help, CLI_HELP_COL, col);
        return;
    }
    if (dflt != NULL) {
        snprintf(text, n, "%s (default: %s)", help, dflt);
    } else {
        snprintf(text, n, "%s", help);
    }
    cli_wrap(f, text, CLI_HELP_COL, col);
    free(text);
}

void
cli_print_help(const cli_command *cmd, FILE *f)
{
    fprintf(f, "usage: kiln %s", cmd->name);
    if (cmd->options != NULL && cmd->options[0].name != NULL) {
        fprintf(f, " [OPTIONS]");
    }
    for (const cli_operand *o = cmd->operands; o != NULL && o->name; o++) {
        fprintf(f, " %s", o->name);
    }
    fprintf(f, "\n\n");
    cli_wrap(f, cmd->doc != NULL ? cmd->doc : cmd->summary, 0, 0);
    if (cmd->operands != NULL && cmd->operands[0].name != NULL) {
        fprintf(f, "\nArguments:\n");
        for (const cli_operand *o = cmd->operands; o->name != NULL; o++) {
            int c = fprintf(f, "  %s", o->name);
            if (c + 2 > CLI_HELP_COL) {
                fputc('\n', f);
                c = 0;
            }
            cli_wrap(f, o->help, CLI_HELP_COL, c);
        }
    }
    fprintf(f, "\nOptions (before or after the arguments; -- ends them):\n");
    for (const cli_option *o = cmd->options; o != NULL && o->name; o++) {
        cli_print_option(f, o->letter, o->name, o->arg, o->help, o->dflt);
    }
    cli_print_option(f, 'h', "help", NULL, "print this help and exit", NULL);
    fprintf(f, "\n");
    cli_wrap(f,
             cmd->exit_status != NULL
                 ? cmd->exit_status
                 : "Exit status: 0 success, 1 failure, 2 usage error.",
             0, 0);
}

int
cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; see \"kiln %s --help\"\n", cmd->name);
    va_end(ap);
    return 2;
}

/* The message for an option getopt refused: `c` is what it returned
 * ('?' or ':'), `bad` the argument it stopped at. */
static void
cli_report(const cli_command *cmd, int c, const char *bad, size_t n_opts)
{
    const cli_option *known = NULL;
    if (optopt >= CLI_LONG_VAL && (size_t)(optopt - CLI_LONG_VAL) < n_opts) {
        known = &cmd->options[optopt - CLI_LONG_VAL];
    }
    for (size_t i = 0; known == NULL && optopt > 0 && i < n_opts; i++) {
        if (cmd->options[i].letter == optopt) {
            known = &cmd->options[i];
        }
    }
    if (c == ':' && known != NULL) {
        cli_usage_error(cmd, "option \"--%s\" needs a value (--%s %s)",
                        known->name, known->name, known->arg);
        return;
    }
    if (known != NULL && known->arg == NULL) {
        cli_usage_error(cmd, "option \"--%s\" takes no value", known->name);
        return;
    }
    /* Unknown: a short option by its letter, a long one as written
     * without its "=value". */
    char word[64];
    if (optopt > 0 && optopt < CLI_LONG_VAL) {
        snprintf(word, sizeof word, "-%c", (char)optopt);
    } else {
        snprintf(word, sizeof word, "%.*s", (int)strcspn(bad, "="), bad);
    }
    const char *names[CLI_MAX_OPTIONS + 1];
    char dashed[CLI_MAX_OPTIONS + 1][40];
    char which[200] = "";
    size_t n_prefix = 0;
    for (size_t i = 0; i <= n_opts; i++) {
        const char *name = i < n_opts ? cmd->options[i].name : "help";
        snprintf(dashed[i], sizeof dashed[i], "--%s", name);
        names[i] = dashed[i];
        if (strncmp(word, "--", 2) == 0 && word[2] != '\0' &&
            strncmp(dashed[i], word, strlen(word)) == 0) {
            size_t l = strlen(which);
            snprintf(which + l, sizeof which - l, "%s%s", n_prefix ? ", " : "",
                     dashed[i]);
            n_prefix++;
        }
    }
    if (n_prefix > 1) {
        cli_usage_error(cmd, "option \"%s\" is ambiguous (%s)", word, which);
        return;
    }
    char hint[128];
    suggest_hint(word, names, n_opts + 1, hint, sizeof hint);
    cli_usage_error(cmd, "unknown option \"%s\"%s", word, hint);
}

int
cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *out)
{
    struct option lo[CLI_MAX_OPTIONS + 2];
    /* '-': operands come back in order as option 1; ':': a missing
     * value is told apart from an unknown option. */
    char shorts[3 * CLI_MAX_OPTIONS + 8] = "-:h";
    size_t n_opts = 0, ns = 3;
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    for (const cli_option *o = cmd->options; o != NULL && o->name; o++) {
        assert(n_opts < CLI_MAX_OPTIONS);
        lo[n_opts] = (struct option){
            o->name, o->arg != NULL ? required_argument : no_argument, NULL,
            CLI_LONG_VAL + (int)n_opts};
        if (o->letter != 0) {
            shorts[ns++] = o->letter;
            if (o->arg != NULL) {
                shorts[ns++] = ':';
            }
        }
        n_opts++;
    }
    lo[n_opts] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n_opts + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[ns] = '\0';
    char **ops = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *ops);
    if (ops == NULL) {
        fprintf(stderr, "kiln %s: out of memory\n", cmd->name);
        return 2;
    }
    int n_ops = 0, rc = CLI_GO_ON;
    optind = 0; /* glibc: start afresh, reading the '-' again */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shorts, lo, NULL);
        if (c == -1) {
            break;
        }
        if (c == 1) {
            ops[n_ops++] = optarg;
        } else if (c == 'h') {
            cli_print_help(cmd, stdout);
            rc = 0;
            break;
        } else if (c >= CLI_LONG_VAL && (size_t)(c - CLI_LONG_VAL) < n_opts) {
            out->value[c - CLI_LONG_VAL] = optarg != NULL ? optarg : "";
        } else if (c != '?' && c != ':') {
            for (size_t i = 0; i < n_opts; i++) {
                if (cmd->options[i].letter == c) {
                    out->value[i] = optarg != NULL ? optarg : "";
                }
            }
        } else {
            cli_report(cmd, c, argv[optind - 1], n_opts);
            rc = 2;
            break;
        }
    }
    if (rc == CLI_GO_ON) {
        /* After "--": the rest are operands, whatever they look like. */
        for (int i = optind; i < argc; i++) {
            ops[n_ops++] = argv[i];
        }
        memcpy(argv + argc - n_ops, ops, (size_t)n_ops * sizeof *ops);
        out->operands = argv + argc - n_ops;
        out->n_operands = n_ops;
        if (cmd->max_operands == 0 && n_ops > 0) {
            rc = cli_usage_error(cmd, "takes no arguments (got \"%s\")",
                                 out->operands[0]);
        } else if (n_ops < cmd->min_operands ||
                   (cmd->max_operands >= 0 && n_ops > cmd->max_operands)) {
            rc = cli_usage_error(cmd, "expected %s (got %d)", cmd->expected,
                                 n_ops);
        }
    }
    free(ops);
    return rc;
}

const char *
cli_get(const cli_args *a, const char *name)
{
    for (size_t i = 0; a->cmd->options != NULL && a->cmd->options[i].name;
         i++) {
        if (strcmp(a->cmd->options[i].name, name) == 0) {
            return a->value[i];
        }
    }
    assert(!"cli_get: the command declares no such option");
    return NULL;
}

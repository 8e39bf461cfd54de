/* Building a program on nexus: nx_app_main runs the whole nexus command line (serve, mcp /
 * --stdio, check-config; config file, NEXUS_* environment, flags) and lets the program add its
 * own MCP tools, resources and prompts before serving. */
#ifndef NEXUS_APP_H
#define NEXUS_APP_H

#include "nexus/mcp.h"

#include <stdbool.h>
#include <stddef.h>

/* Adds the program's catalog to <server> (nexus's built-in tools are already there); returns 0,
 * or a negative error with a message in <err>, which stops the program with exit status 1. */
typedef int (*nx_app_setup_fn)(nx_mcp_server_t *server, void *arg, char *err, size_t errlen);

/* A command-line flag of the program's own ("--latency-ms 5"): <parse> gets the value (NULL
 * for a switch) and <arg> of the app, and returns 0, or -1 after printing why to stderr (the
 * program then exits with status 2). */
typedef struct nx_app_flag {
    const char *name; /* with the dashes */
    bool takes_value;
    const char *help; /* one line for --help */
    int (*parse)(const char *value, void *arg);
} nx_app_flag_t;

typedef struct nx_app {
    const char *about; /* printed above the usage by --help; may be NULL */
    nx_app_setup_fn setup;
    void *arg;
    const nx_app_flag_t *flags; /* the program's own flags, or NULL */
    size_t flag_count;
} nx_app_t;

/** Runs the nexus command line with <app>'s additions (NULL = plain nexus); returns the exit
 *  status (0 ok, 1 runtime failure, 2 usage or configuration error). */
int nx_app_main(int argc, char **argv, const nx_app_t *app);

#endif

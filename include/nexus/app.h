/* Building a program on nexus: nx_app_main runs the whole nexus command line (serve, mcp /
 * --stdio, check-config; config file, NEXUS_* environment, flags) and lets the program add its
 * own MCP tools, resources and prompts before serving. */
#ifndef NEXUS_APP_H
#define NEXUS_APP_H

#include "nexus/mcp.h"

#include <stddef.h>

/* Adds the program's catalog to <server> (nexus's built-in tools are already there); returns 0,
 * or a negative error with a message in <err>, which stops the program with exit status 1. */
typedef int (*nx_app_setup_fn)(nx_mcp_server_t *server, void *arg, char *err, size_t errlen);

typedef struct nx_app {
    const char *about; /* printed above the usage by --help; may be NULL */
    nx_app_setup_fn setup;
    void *arg;
} nx_app_t;

/** Runs the nexus command line with <app>'s additions (NULL = plain nexus); returns the exit
 *  status (0 ok, 1 runtime failure, 2 usage or configuration error). */
int nx_app_main(int argc, char **argv, const nx_app_t *app);

#endif

/* `nexus run` and `nexus workflows`: the workflow commands of the CLI channel. Unlike `nexus
 * client` they run no engine in this process: they talk to a running nexus over its REST API
 * (POST /api/executions, GET /api/workflows) and follow an execution on /events, or by polling
 * its record when the server has no event stream. */
#ifndef NX_ENGINE_CLI_RUN_H
#define NX_ENGINE_CLI_RUN_H

/* Exit statuses of both commands; the usage text documents them. */
enum {
    NX_CLI_EXIT_OK = 0,
    NX_CLI_EXIT_FAILED = 1,   /* the workflow failed or was cancelled by someone else */
    NX_CLI_EXIT_USAGE = 2,    /* bad arguments, parameters that are not a JSON object, or
                               * inputs the server refused (400) */
    NX_CLI_EXIT_NOTFOUND = 3, /* no such workflow, or not on the CLI channel (404) */
    NX_CLI_EXIT_SERVER = 4,   /* the server could not be reached or answered an HTTP error */
    NX_CLI_EXIT_TIMEOUT = 5,  /* --timeout passed; the execution was cancelled */
    NX_CLI_EXIT_INTERRUPTED = 130,
};

/** Runs `nexus run` with its arguments <argv>[1..<argc>) (argv[0] is "run"); returns one of
 *  the NX_CLI_EXIT_* statuses. */
int nx_cli_run_main(int argc, char **argv);
/** Runs `nexus workflows` with its arguments <argv>[1..<argc>) (argv[0] is "workflows");
 *  returns NX_CLI_EXIT_OK, _USAGE or _SERVER. */
int nx_cli_workflows_main(int argc, char **argv);

#endif

/* The nexus command line, shared by every program built on the engine (nexus itself, the
 * conformance server, nxmock): `nexus` alone serves with zero configuration; `serve` takes
 * --config, flags and NEXUS_* variables (flags > environment > file > defaults); `mcp` (or
 * --stdio) serves MCP on stdin/stdout; `check-config` validates a file and prints the precise
 * error; `client` is nexus's MCP client (cli_client.c); `run` and `workflows` drive the
 * workflows of a running nexus (cli_run.c). An embedding program adds its own
 * tools, resources and prompts in its setup hook. */
#include "nexus/app.h"

#include "cli_client.h"
#include "cli_run.h"
#include "config.h"
#include "engine.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "nexus " NX_VERSION " - high-throughput, resilient coordination engine\n"
    "\n"
    "Usage:\n"
    "  nexus [serve] [options]        serve REST and MCP (Streamable HTTP, WebSocket)\n"
    "  nexus mcp [options]            serve the MCP catalog on stdin/stdout (for desktop\n"
    "                                 clients that spawn their servers; logs on stderr);\n"
    "                                 --stdio anywhere on the line does the same\n"
    "  nexus check-config FILE        validate a configuration file and print the result\n"
    "  nexus client URL list|call TOOL [--args JSON]\n"
    "                                 list or call the tools of an MCP server (see\n"
    "                                 nexus client --help)\n"
    "  nexus workflows [--server URL] [--json]\n"
    "                                 list the workflows of a running nexus\n"
    "  nexus run WORKFLOW [--parameters JSON|@FILE] [--server URL] [--no-wait] [--json]\n"
    "            [--timeout T]        run a workflow on a running nexus, show its steps\n"
    "                                 and print its result (see nexus run --help); exit\n"
    "                                 status 0 succeeded, 1 failed, 2 usage or bad\n"
    "                                 parameters, 3 no such workflow, 4 server or HTTP\n"
    "                                 error, 5 --timeout, 130 interrupted\n"
    "  nexus --help | --version\n"
    "\n"
    "Options (override NEXUS_* environment variables, which override the file):\n"
    "  -c, --config FILE      YAML or JSON configuration file\n"
    "      --host HOST        REST listen address (NEXUS_HOST, default 127.0.0.1)\n"
    "  -p, --port PORT        REST port (NEXUS_PORT, default 8000; 0 = any free port)\n"
    "      --mcp-host HOST    MCP listen address (NEXUS_MCP_HOST, default 127.0.0.1)\n"
    "      --mcp-port PORT    MCP port (NEXUS_MCP_PORT, default 3000)\n"
    "      --no-mcp           do not open the MCP port\n"
    "  -s, --shards N         shards (threads with their own io_uring); 0 = one per CPU\n"
    "                         (NEXUS_SHARDS)\n"
    "      --log-level LEVEL  debug, info, warn, error, off (NEXUS_LOG_LEVEL)\n"
    "      --access-log       log one line per request\n"
    "      --debug-routes     enable the /debug/* test routes\n"
    "      --set KEY=VALUE    set any configuration key, e.g. --set http.max_body=1MiB\n"
    "\n"
    "Any key can also come from the environment as NEXUS_<SECTION>__<KEY>, e.g.\n"
    "NEXUS_HTTP__MAX_BODY=1MiB. Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads.\n"
    "The client commands (workflows, run) talk to --server URL, else $NEXUS_URL, else\n"
    "http://127.0.0.1:8000.\n"
    "Exit status (serve): 0 ok, 1 runtime failure, 2 usage or configuration error.\n";

/* Flag name -> config key; flags without a value set the key to "true". */
static const struct {
    const char *flag, *short_flag, *key;
    bool takes_value;
} flag_table[] = {
    {"--host", NULL, "server.host", true},       {"--port", "-p", "server.port", true},
    {"--mcp-host", NULL, "mcp.host", true},      {"--mcp-port", NULL, "mcp.port", true},
    {"--shards", "-s", "server.shards", true},   {"--log-level", NULL, "log.level", true},
    {"--access-log", NULL, "log.access", false}, {"--debug-routes", NULL, "debug_routes", false},
    {"--no-mcp", NULL, "mcp.enabled", false},
};

static int config_error(const nx_config_error_t *err) {
    char msg[700];
    nx_config_error_format(err, msg, sizeof(msg));
    fprintf(stderr, "nexus: configuration error: %s\n", msg);
    return 2;
}

static int check_config(const char *file) {
    nx_config_t c;
    nx_config_error_t err;
    if (nx_engine_load_config(&c, file, NULL, &err) < 0) return config_error(&err);
    printf("%s: configuration OK\n", file);
    nx_config_dispose(&c);
    return 0;
}

int nx_app_main(int argc, char **argv, const nx_app_t *app) {
    const char *file = NULL;
    /* Overrides are key/value pairs, NULL-terminated; at most one pair per argument. */
    char **overrides = calloc((size_t)argc * 2 + 2, sizeof(char *));
    if (overrides == NULL) return 1;
    size_t n = 0;
    int first = 1;
    bool stdio = false;
    if (argc > 1 && strcmp(argv[1], "serve") == 0) first = 2;
    if (argc > 1 && strcmp(argv[1], "mcp") == 0) {
        first = 2;
        stdio = true;
    }
    if (argc > 1 && strcmp(argv[1], "client") == 0) {
        free(overrides);
        return nx_cli_client_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "run") == 0) {
        free(overrides);
        return nx_cli_run_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "workflows") == 0) {
        free(overrides);
        return nx_cli_workflows_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "check-config") == 0) {
        free(overrides);
        if (argc == 3) return check_config(argv[2]);
        if (argc == 4 && (strcmp(argv[2], "--config") == 0 || strcmp(argv[2], "-c") == 0))
            return check_config(argv[3]);
        fprintf(stderr, "usage: nexus check-config FILE\n");
        return 2;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--stdio") == 0) {
            stdio = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (app != NULL && app->about != NULL) printf("%s\n\n", app->about);
            fputs(usage, stdout);
            if (app != NULL && app->flag_count > 0) {
                printf("\nOptions of this program:\n");
                for (size_t f = 0; f < app->flag_count; f++)
                    printf("  %s%s\n      %s\n", app->flags[f].name,
                           app->flags[f].takes_value ? " VALUE" : "", app->flags[f].help);
            }
            free(overrides);
            return 0;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("nexus %s\n", NX_VERSION);
            free(overrides);
            return 0;
        }
        if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc) goto missing;
            file = argv[++i];
            continue;
        }
        if (strcmp(a, "--set") == 0) {
            if (i + 1 >= argc) goto missing;
            char *kv = argv[++i];
            char *eq = strchr(kv, '=');
            if (eq == NULL) {
                fprintf(stderr, "nexus: --set needs KEY=VALUE, got '%s'\n", kv);
                free(overrides);
                return 2;
            }
            *eq = '\0';
            overrides[n++] = kv;
            overrides[n++] = eq + 1;
            continue;
        }
        bool known = false;
        for (size_t f = 0; f < sizeof(flag_table) / sizeof(flag_table[0]); f++) {
            if (strcmp(a, flag_table[f].flag) != 0 &&
                (flag_table[f].short_flag == NULL || strcmp(a, flag_table[f].short_flag) != 0))
                continue;
            known = true;
            overrides[n++] = (char *)flag_table[f].key;
            if (flag_table[f].takes_value) {
                if (i + 1 >= argc) goto missing;
                overrides[n++] = argv[++i];
            } else {
                overrides[n++] = strcmp(a, "--no-mcp") == 0 ? "false" : "true";
            }
        }
        for (size_t f = 0; !known && app != NULL && f < app->flag_count; f++) {
            const nx_app_flag_t *af = &app->flags[f];
            if (strcmp(a, af->name) != 0) continue;
            known = true;
            if (af->takes_value && i + 1 >= argc) goto missing;
            if (af->parse(af->takes_value ? argv[++i] : NULL, app->arg) < 0) {
                free(overrides);
                return 2;
            }
        }
        if (!known) {
            fprintf(stderr, "nexus: unknown option or command '%s' (see nexus --help)\n", a);
            free(overrides);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "nexus: option %s needs a value (see nexus --help)\n", a);
        free(overrides);
        return 2;
    }

    nx_config_t c;
    nx_config_error_t err;
    if (nx_engine_load_config(&c, file, overrides, &err) < 0) {
        free(overrides);
        return config_error(&err);
    }
    nx_log_set_level(c.log_level);
    if (stdio) c.shards = 1; /* one loop owns stdin and stdout */
    nx_config_snapshot_t *snap = nx_config_snapshot_new(&c);
    nx_config_dispose(&c); /* the snapshot holds its own copy */
    nx_engine_t *e = NULL;
    int rc = snap ? nx_engine_new(snap, overrides, &e) : -1;
    if (rc == 0 && app != NULL && app->setup != NULL) {
        char msg[512] = "";
        rc = app->setup(e->mcp, app->arg, msg, sizeof(msg));
        if (rc < 0) nx_log_error("cannot start: %s", msg[0] ? msg : "setup failed");
    }
    if (rc < 0) {
        nx_log_error("cannot start: %d", rc);
        nx_engine_free(e);
        free(overrides);
        return 1;
    }
    int status = stdio ? nx_engine_run_stdio(e) : nx_engine_run(e);
    nx_engine_free(e);
    free(overrides);
    return status;
}

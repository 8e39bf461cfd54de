/* `nexus client`: nexus's MCP client on the command line (list the tools of an MCP server, call
 * one), run through an in-process nexus whose only backend is that server. */
#ifndef NX_ENGINE_CLI_CLIENT_H
#define NX_ENGINE_CLI_CLIENT_H

/** Runs `nexus client` with its arguments <argv>[1..<argc>) (argv[0] is "client"); returns the
 *  exit status: 0 ok, 1 the call failed (a JSON-RPC error, a tool's isError, an unreachable
 *  server), 2 usage error. */
int nx_cli_client_main(int argc, char **argv);

#endif

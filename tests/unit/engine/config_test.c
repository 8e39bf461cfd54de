/* Tests for engine/config.c: defaults, YAML and JSON files, every error path (file, line, key
 * and message), environment and flag overrides and their precedence, durations and sizes,
 * validation, error formatting, JSON export and the document tree later sections walk. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "nexus/errors.h"

/* ---- helpers ---- */

/* The origin slot of a dotted key; fails the test for an unknown key. */
static int slot(const char *key) {
    int i = nx_config_key_index(key);
    cr_assert_geq(i, 0, "unknown key %s", key);
    return i;
}

static int load(nx_config_t *c, const char *text, nx_config_error_t *err) {
    nx_config_defaults(c);
    memset(err, 0, sizeof(*err));
    return nx_config_load_string(c, "nexus.yaml", text, strlen(text), err);
}

static void load_ok(nx_config_t *c, const char *text) {
    nx_config_error_t err;
    int rc = load(c, text, &err);
    cr_assert_eq(rc, 0, "unexpected error: %s:%d: %s: %s", err.file, err.line, err.key,
                 err.message);
}

/* Loads <text> and asserts it fails at <line> and <key> with a message containing <msg>. */
static void expect_error(const char *text, int line, const char *key, const char *msg) {
    nx_config_t c;
    nx_config_error_t err;
    int rc = load(&c, text, &err);
    cr_assert_eq(rc, NX_ECONFIG, "expected an error for:\n%s", text);
    cr_expect_str_eq(err.file, "nexus.yaml");
    cr_expect_eq(err.line, line, "line %d, expected %d (%s)", err.line, line, err.message);
    cr_expect_str_eq(err.key, key, "key '%s', expected '%s' (%s)", err.key, key, err.message);
    cr_expect(strstr(err.message, msg) != NULL, "message '%s' lacks '%s'", err.message, msg);
}

/* Writes <text> to a new temp file whose name ends in <suffix>; the caller unlinks <path>. */
static void write_temp(char *path, size_t cap, const char *suffix, const char *text) {
    snprintf(path, cap, "/tmp/nx_config_test_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    cr_assert_geq(fd, 0, "mkstemps: %s", strerror(errno));
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Asserts every configuration field of <a> and <b> is equal (not source or origins). */
static void expect_same_values(const nx_config_t *a, const nx_config_t *b) {
    cr_expect_str_eq(a->rest.host, b->rest.host);
    cr_expect_eq(a->rest.port, b->rest.port);
    cr_expect_eq(a->rest.enabled, b->rest.enabled);
    cr_expect_str_eq(a->mcp.host, b->mcp.host);
    cr_expect_eq(a->mcp.port, b->mcp.port);
    cr_expect_eq(a->mcp.enabled, b->mcp.enabled);
    cr_expect_eq(a->shards, b->shards);
    cr_expect_eq(a->log_level, b->log_level);
    cr_expect_eq(a->access_log, b->access_log);
    cr_expect_eq(a->http.max_header_bytes, b->http.max_header_bytes);
    cr_expect_eq(a->http.max_headers, b->http.max_headers);
    cr_expect_eq(a->http.max_uri, b->http.max_uri);
    cr_expect_eq(a->http.max_body, b->http.max_body);
    cr_expect_eq(a->http.header_timeout_ms, b->http.header_timeout_ms);
    cr_expect_eq(a->http.body_timeout_ms, b->http.body_timeout_ms);
    cr_expect_eq(a->http.keepalive_timeout_ms, b->http.keepalive_timeout_ms);
    cr_expect_eq(a->http.max_connections, b->http.max_connections);
    cr_expect_eq(a->drain_timeout_ms, b->drain_timeout_ms);
    cr_expect_eq(a->debug_routes, b->debug_routes);
    cr_expect_str_eq(a->servers.separator, b->servers.separator);
    cr_expect_eq(a->servers.list_budget_ms, b->servers.list_budget_ms);
    cr_expect_eq(a->servers.count, b->servers.count);
}

static const char full_yaml[] = "# every key, none at its default\n"
                                "server:\n"
                                "  host: 0.0.0.0\n"
                                "  port: 9000\n"
                                "  shards: 4\n"
                                "mcp:\n"
                                "  host: \"::1\"\n"
                                "  port: 9001\n"
                                "  enabled: no\n"
                                "log:\n"
                                "  level: debug\n"
                                "  access: on\n"
                                "http:\n"
                                "  max_header_bytes: 32KiB\n"
                                "  max_headers: 64\n"
                                "  max_uri: 4KiB\n"
                                "  max_body: 1.5MiB\n"
                                "  header_timeout: 2s\n"
                                "  body_timeout: 1m\n"
                                "  keepalive_timeout: 250ms\n"
                                "  max_connections: 1000\n"
                                "shutdown:\n"
                                "  grace: 1.5s\n"
                                "debug_routes: true\n"
                                "federation:\n"
                                "  separator: \".\"\n"
                                "  list_budget: 750ms\n";

static void expect_full(const nx_config_t *c) {
    cr_expect_str_eq(c->rest.host, "0.0.0.0");
    cr_expect_eq(c->rest.port, 9000);
    cr_expect_eq(c->shards, 4);
    cr_expect_str_eq(c->mcp.host, "::1");
    cr_expect_eq(c->mcp.port, 9001);
    cr_expect_eq(c->mcp.enabled, false);
    cr_expect_eq(c->log_level, NX_LOG_DEBUG);
    cr_expect_eq(c->access_log, true);
    cr_expect_eq(c->http.max_header_bytes, 32768);
    cr_expect_eq(c->http.max_headers, 64);
    cr_expect_eq(c->http.max_uri, 4096);
    cr_expect_eq(c->http.max_body, 1572864);
    cr_expect_eq(c->http.header_timeout_ms, 2000);
    cr_expect_eq(c->http.body_timeout_ms, 60000);
    cr_expect_eq(c->http.keepalive_timeout_ms, 250);
    cr_expect_eq(c->http.max_connections, 1000);
    cr_expect_eq(c->drain_timeout_ms, 1500);
    cr_expect_eq(c->debug_routes, true);
    cr_expect_str_eq(c->servers.separator, ".");
    cr_expect_eq(c->servers.list_budget_ms, 750);
}

/* ---- defaults ---- */

Test(config_defaults, every_field_has_its_documented_default) {
    nx_config_t c;
    nx_config_defaults(&c);
    cr_expect_str_eq(c.source, "");
    cr_expect_str_eq(c.rest.host, "127.0.0.1");
    cr_expect_eq(c.rest.port, 8000);
    cr_expect(c.rest.enabled);
    cr_expect_str_eq(c.mcp.host, "127.0.0.1");
    cr_expect_eq(c.mcp.port, 3000);
    cr_expect(c.mcp.enabled);
    cr_expect_eq(c.shards, 0);
    cr_expect_eq(c.log_level, NX_LOG_INFO);
    cr_expect_not(c.access_log);
    cr_expect_eq(c.http.max_header_bytes, 16384);
    cr_expect_eq(c.http.max_headers, 100);
    cr_expect_eq(c.http.max_uri, 8192);
    cr_expect_eq(c.http.max_body, 10u << 20);
    cr_expect_eq(c.http.header_timeout_ms, 10000);
    cr_expect_eq(c.http.body_timeout_ms, 30000);
    cr_expect_eq(c.http.keepalive_timeout_ms, 75000);
    cr_expect_eq(c.http.max_connections, 65536);
    cr_expect_eq(c.drain_timeout_ms, 10000);
    cr_expect_not(c.debug_routes);
    cr_expect_str_eq(c.servers.separator, "__");
    cr_expect_eq(c.servers.list_budget_ms, 2000);
    cr_expect_eq(c.servers.count, 0);
    cr_expect_null(c.servers.items);
    nx_config_error_t err;
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
}

Test(config_defaults, empty_and_comment_only_documents_keep_defaults) {
    const char *docs[] = {"",       "\n\n",    "# nothing here\n",       "---\n", "~\n",
                          "null\n", "http:\n", "server:\n  # port: 1\n", "{}"};
    nx_config_t d;
    nx_config_defaults(&d);
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        nx_config_t c;
        load_ok(&c, docs[i]);
        expect_same_values(&c, &d);
        cr_expect_str_eq(c.source, "nexus.yaml");
    }
}

Test(config_defaults, example_file_documents_exactly_the_defaults) {
    const char *f = __FILE__, *tail = "tests/unit/engine/config_test.c";
    size_t n = strlen(f), t = strlen(tail);
    cr_assert(n >= t && strcmp(f + n - t, tail) == 0);
    char path[4096];
    snprintf(path, sizeof(path), "%.*sexamples/nexus.yaml", (int)(n - t), f);
    nx_config_t c, d;
    nx_config_error_t err;
    nx_config_defaults(&c);
    nx_config_defaults(&d);
    int rc = nx_config_load_file(&c, path, &err);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s", err.file, err.line, err.key, err.message);
    expect_same_values(&c, &d);
    /* ...and it shows every key: each one's origin points into the file. */
    for (int i = 0; i < NX_CONFIG_NKEYS; i++) {
        cr_expect_str_eq(c.origin[i].file, path, "%s", nx_config_key_name(i));
        cr_expect_gt(c.origin[i].line, 0, "%s", nx_config_key_name(i));
        cr_expect_eq(nx_config_key_index(nx_config_key_name(i)), i);
    }
    cr_expect_null(nx_config_key_name(NX_CONFIG_NKEYS));
    cr_expect_null(nx_config_key_name(-1));
    cr_expect_eq(nx_config_key_index("server"), -1);
}

/* ---- loading files ---- */

Test(config_load, full_yaml_file_sets_every_key) {
    char path[64];
    write_temp(path, sizeof(path), ".yaml", full_yaml);
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    int rc = nx_config_load_file(&c, path, &err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s", err.file, err.line, err.key, err.message);
    expect_full(&c);
    cr_expect_str_eq(c.source, path);
    cr_expect_str_eq(c.origin[slot("server.port")].file, path);
    cr_expect_eq(c.origin[slot("server.port")].line, 4);
}

Test(config_load, flow_style_layout_from_the_docs) {
    nx_config_t c;
    load_ok(&c, "server: {host: 127.0.0.2, port: 8001, shards: 2}\n"
                "mcp: {host: 127.0.0.3, port: 3001, enabled: true}\n"
                "log: {level: warn, access: false}\n"
                "http: {max_header_bytes: 16KiB, max_headers: 100, max_uri: 8KiB, max_body: "
                "10MiB, header_timeout: 10s, body_timeout: 30s, keepalive_timeout: 75s, "
                "max_connections: 65536}\n"
                "shutdown: {grace: 10s}\n"
                "debug_routes: false\n");
    cr_expect_str_eq(c.rest.host, "127.0.0.2");
    cr_expect_eq(c.rest.port, 8001);
    cr_expect_eq(c.shards, 2);
    cr_expect_str_eq(c.mcp.host, "127.0.0.3");
    cr_expect_eq(c.log_level, NX_LOG_WARN);
    cr_expect_eq(c.http.max_uri, 8192);
    cr_expect_eq(c.http.keepalive_timeout_ms, 75000);
}

Test(config_load, json_file_with_escapes_and_tabs) {
    char path[64];
    write_temp(path, sizeof(path), ".json",
               "{\n"
               "\t\"server\": {\"host\": \"local\\u0068ost\", \"port\": 8080},\n"
               "\t\"mcp\": {\"enabled\": false, \"port\": 0},\n"
               "\t\"log\": {\"level\": \"ERROR\", \"access\": true},\n"
               "\t\"http\": {\"max_body\": 1048576, \"header_timeout\": \"1.5s\"},\n"
               "\t\"debug_routes\": true\n"
               "}\n");
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    int rc = nx_config_load_file(&c, path, &err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s", err.file, err.line, err.key, err.message);
    cr_expect_str_eq(c.rest.host, "localhost");
    cr_expect_eq(c.rest.port, 8080);
    cr_expect_not(c.mcp.enabled);
    cr_expect_eq(c.mcp.port, 0);
    cr_expect_eq(c.log_level, NX_LOG_ERROR);
    cr_expect(c.access_log);
    cr_expect_eq(c.http.max_body, 1048576);
    cr_expect_eq(c.http.header_timeout_ms, 1500);
    cr_expect(c.debug_routes);
}

Test(config_load, json_errors_name_line_and_key) {
    expect_error("{\n  \"server\": {\n    \"port\": \"eighty\"\n  }\n}\n", 3, "server.port",
                 "expected a port number (0..65535), got 'eighty'");
    expect_error("{\n  \"server\": {\"port\": 1}\n  \"log\": {}\n}\n", 3, "",
                 "YAML syntax error: did not find expected ',' or '}'");
    expect_error("{\"a\": \"\\ud83d\\ude00\"}", 1, "", "surrogate pairs");
}

Test(config_load, second_file_overlays_the_first) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, "server: {port: 1000, shards: 3}\n");
    const char *two = "server:\n  port: 2000\n";
    cr_assert_eq(nx_config_load_string(&c, "local.yaml", two, strlen(two), &err), 0);
    cr_expect_eq(c.rest.port, 2000);
    cr_expect_eq(c.shards, 3);
    cr_expect_str_eq(c.source, "local.yaml");
}

Test(config_load, failed_load_leaves_config_unchanged) {
    nx_config_t c, before;
    nx_config_error_t err;
    load_ok(&c, "server: {port: 1000}\n");
    before = c;
    const char *bad = "server:\n  port: 2000\n  shards: lots\n";
    cr_assert_eq(nx_config_load_string(&c, "bad.yaml", bad, strlen(bad), &err), NX_ECONFIG);
    cr_expect_eq(c.rest.port, 1000);
    cr_expect_str_eq(c.source, "nexus.yaml");
    cr_expect_eq(memcmp(&c, &before, sizeof(c)), 0);
}

Test(config_load, missing_file_is_an_io_error) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_load_file(&c, "/nonexistent/nexus.yaml", &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "/nonexistent/nexus.yaml");
    cr_expect_eq(err.line, 0);
    cr_expect_str_eq(err.key, "");
    cr_expect_str_eq(err.message, strerror(ENOENT));
}

Test(config_load, directory_is_an_io_error) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_load_file(&c, "/tmp", &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "/tmp");
    cr_expect_str_eq(err.message, strerror(EISDIR));
}

Test(config_load, null_err_is_allowed) {
    nx_config_t c;
    nx_config_defaults(&c);
    cr_expect_eq(nx_config_load_string(&c, NULL, "x: 1", 4, NULL), NX_ECONFIG);
    cr_expect_eq(nx_config_load_file(&c, "/nonexistent", NULL), NX_ECONFIG);
    cr_expect_eq(nx_config_set(&c, "server.port", "x", NULL, NULL, NULL), NX_ECONFIG);
}

/* ---- error paths ---- */

Test(config_errors, unknown_keys_suggest_the_closest) {
    expect_error("sever:\n  port: 1\n", 1, "sever", "unknown key 'sever'; did you mean 'server'?");
    expect_error("server:\n  host: x\n  prot: 1\n", 3, "server.prot",
                 "unknown key 'prot'; did you mean 'port'?");
    expect_error("http:\n  max_bdy: 1\n", 2, "http.max_bdy",
                 "unknown key 'max_bdy'; did you mean 'max_body'?");
    expect_error("log: {Level: info}\n", 1, "log.Level", "did you mean 'level'?");
}

Test(config_errors, unknown_keys_without_a_close_match) {
    nx_config_t c;
    nx_config_error_t err;
    cr_assert_eq(load(&c, "http:\n  frobnicate: 1\n", &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "unknown key 'frobnicate'");
    cr_assert_eq(load(&c, "debug: true\n", &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "unknown key 'debug'");
    expect_error("server:\n  max_body: 1\n", 2, "server.max_body", "unknown key 'max_body'");
}

Test(config_errors, sections_of_later_versions_are_still_unknown) {
    const char *names[] = {"auth", "sessions", "rate_limits"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char doc[128], want[64];
        snprintf(doc, sizeof(doc), "log: {}\n%s:\n  - a: 1\n", names[i]);
        snprintf(want, sizeof(want), "unknown key '%s'", names[i]);
        expect_error(doc, 2, names[i], want);
        expect_error(doc, 2, names[i], "not supported yet");
    }
}

Test(config_errors, a_section_must_be_a_mapping) {
    expect_error("server: 8000\n", 1, "server", "expected a mapping, got '8000'");
    expect_error("http:\n  - max_body: 1\n", 2, "http", "expected a mapping, got a sequence");
    expect_error("log: ''\n", 1, "log", "expected a mapping, got ''");
}

Test(config_errors, the_top_level_must_be_a_mapping) {
    expect_error("- server\n- mcp\n", 1, "", "expected a mapping at the top level, got a sequence");
    expect_error("\n\nhello\n", 3, "", "expected a mapping at the top level, got 'hello'");
    expect_error("[1, 2]", 1, "", "got a sequence");
}

Test(config_errors, scalars_of_the_wrong_kind) {
    expect_error("server:\n  port: [8000]\n", 2, "server.port",
                 "expected a port number (0..65535), got a sequence");
    expect_error("server:\n  port:\n    number: 8000\n", 3, "server.port",
                 "expected a port number (0..65535), got a mapping");
    expect_error("server:\n  port:\n", 2, "server.port", "got an empty value");
    expect_error("server:\n  port: ~\n", 2, "server.port", "got null");
    expect_error("server:\n  host: [a, b]\n", 2, "server.host",
                 "expected a host name or address, got a sequence");
    expect_error("debug_routes: {}\n", 1, "debug_routes",
                 "expected a boolean (true/false, yes/no, on/off), got a mapping");
    expect_error("http:\n  header_timeout: [1s]\n", 2, "http.header_timeout",
                 "expected a duration like 10s or 250ms, got a sequence");
    expect_error("http:\n  max_body: null\n", 2, "http.max_body",
                 "expected a size like 16KiB or 10MiB, got null");
    expect_error("log:\n  level: [debug]\n", 2, "log.level",
                 "expected a log level (debug, info, warn, error, off), got a sequence");
}

Test(config_errors, integers_and_ports) {
    expect_error("server:\n  port: http\n", 2, "server.port",
                 "expected a port number (0..65535), got 'http'");
    expect_error("server:\n  port: 65536\n", 2, "server.port",
                 "'65536' is out of range (0..65535)");
    expect_error("server:\n  port: -1\n", 2, "server.port", "'-1' is out of range (0..65535)");
    expect_error("server:\n  port: 80.5\n", 2, "server.port", "got '80.5'");
    expect_error("server:\n  shards: 257\n", 2, "server.shards", "'257' is out of range (0..256)");
    expect_error("server:\n  shards: 99999999999999999999999\n", 2, "server.shards",
                 "is out of range (0..256)");
    expect_error("server:\n  shards: four\n", 2, "server.shards",
                 "expected an integer, got 'four'");
    expect_error("http:\n  max_headers: 129\n", 2, "http.max_headers",
                 "'129' is out of range (1..128)");
    expect_error("http:\n  max_headers: 0\n", 2, "http.max_headers", "out of range (1..128)");
    expect_error("http:\n  max_connections: 0\n", 2, "http.max_connections",
                 "'0' is out of range (1..16777216)");
    nx_config_t c;
    load_ok(&c, "server: {port: 0}\nmcp: {port: 65535}\nhttp: {max_headers: 128}\n");
    cr_expect_eq(c.rest.port, 0);
    cr_expect_eq(c.mcp.port, 65535);
    cr_expect_eq(c.http.max_headers, 128);
}

Test(config_errors, booleans) {
    const char *yes[] = {"true", "True", "YES", "on", "On"};
    const char *no[] = {"false", "FALSE", "no", "off", "Off"};
    for (size_t i = 0; i < 5; i++) {
        char doc[64];
        nx_config_t c;
        snprintf(doc, sizeof(doc), "debug_routes: %s\n", yes[i]);
        load_ok(&c, doc);
        cr_expect(c.debug_routes, "%s", yes[i]);
        snprintf(doc, sizeof(doc), "mcp: {enabled: %s}\n", no[i]);
        load_ok(&c, doc);
        cr_expect_not(c.mcp.enabled, "%s", no[i]);
    }
    expect_error("mcp:\n  enabled: maybe\n", 2, "mcp.enabled",
                 "expected a boolean (true/false, yes/no, on/off), got 'maybe'");
    expect_error("mcp:\n  enabled: 1\n", 2, "mcp.enabled", "got '1'");
}

Test(config_errors, durations_in_the_file) {
    expect_error("http:\n  header_timeout: 10 parsecs\n", 2, "http.header_timeout",
                 "unknown unit 'parsecs' in '10 parsecs' (use ms, s, m or h)");
    expect_error("http:\n  header_timeout: soon\n", 2, "http.header_timeout",
                 "expected a duration like 10s or 250ms, got 'soon'");
    expect_error("http:\n  header_timeout: 0\n", 2, "http.header_timeout",
                 "'0' is out of range (1ms..1h)");
    expect_error("http:\n  body_timeout: 2h\n", 2, "http.body_timeout",
                 "'2h' is out of range (1ms..1h)");
    expect_error("shutdown:\n  grace: -1s\n", 2, "shutdown.grace", "'-1s' must not be negative");
    expect_error("shutdown:\n  grace: 1.0005s\n", 2, "shutdown.grace",
                 "'1.0005s' is not a whole number of milliseconds");
    expect_error("shutdown:\n  grace: 99999999999999999999h\n", 2, "shutdown.grace",
                 "is too large");
    nx_config_t c;
    load_ok(&c, "http: {keepalive_timeout: 0}\nshutdown: {grace: 0s}\n");
    cr_expect_eq(c.http.keepalive_timeout_ms, 0);
    cr_expect_eq(c.drain_timeout_ms, 0);
}

Test(config_errors, sizes_in_the_file) {
    expect_error("http:\n  max_body: 10XB\n", 2, "http.max_body",
                 "unknown unit 'XB' in '10XB' (use B, KiB, MiB, GiB, KB, MB or GB)");
    expect_error("http:\n  max_body: big\n", 2, "http.max_body",
                 "expected a size like 16KiB or 10MiB, got 'big'");
    expect_error("http:\n  max_body: 1025GiB\n", 2, "http.max_body",
                 "'1025GiB' is out of range (0B..1024GiB)");
    expect_error("http:\n  max_header_bytes: 100\n", 2, "http.max_header_bytes",
                 "'100' is out of range (256B..1MiB)");
    expect_error("http:\n  max_uri: 2MiB\n", 2, "http.max_uri",
                 "'2MiB' is out of range (16B..1MiB)");
    expect_error("http:\n  max_body: 0.3B\n", 2, "http.max_body",
                 "'0.3B' is not a whole number of bytes");
    expect_error("http:\n  max_body: 1e6\n", 2, "http.max_body", "unknown unit 'e6'");
}

Test(config_errors, log_levels) {
    const char *names[] = {"debug", "info", "warn", "warning", "error", "off", "WARNING", "Info"};
    nx_log_level_t want[] = {NX_LOG_DEBUG, NX_LOG_INFO, NX_LOG_WARN, NX_LOG_WARN,
                             NX_LOG_ERROR, NX_LOG_OFF,  NX_LOG_WARN, NX_LOG_INFO};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char doc[64];
        nx_config_t c;
        snprintf(doc, sizeof(doc), "log: {level: %s}\n", names[i]);
        load_ok(&c, doc);
        cr_expect_eq(c.log_level, want[i], "%s", names[i]);
    }
    expect_error("log:\n  level: verbose\n", 2, "log.level",
                 "expected a log level (debug, info, warn, error, off), got 'verbose'");
    expect_error("log:\n  level: 3\n", 2, "log.level", "got '3'");
}

Test(config_errors, hosts) {
    expect_error("server:\n  host: ''\n", 2, "server.host",
                 "expected a host name or address, got an empty value");
    expect_error("mcp:\n  host: 'my host'\n", 2, "mcp.host",
                 "'my host' is not a valid host name or address");
    expect_error("mcp:\n  host: \"a\\0b\"\n", 2, "mcp.host", "is not a valid host name or address");
    expect_error("mcp:\n  host: '[[::1]]'\n", 2, "mcp.host",
                 "'[[::1]]' is not a valid host name or address");
    expect_error("mcp:\n  host: 'h/x'\n", 2, "mcp.host", "is not a valid host name or address");
    char doc[400] = "server:\n  host: ";
    memset(doc + strlen(doc), 'a', 300);
    expect_error(doc, 2, "server.host", "host is longer than 255 characters");
    nx_config_t c;
    load_ok(&c, "server: {host: '[::1]'}\nmcp: {host: '::'}\n");
    cr_expect_str_eq(c.rest.host, "::1");
    cr_expect_str_eq(c.mcp.host, "::");
    load_ok(&c, "server: {host: 'fe80::1%eth0'}\nmcp: {host: my-host_1.example.COM}\n");
    cr_expect_str_eq(c.rest.host, "fe80::1%eth0");
    cr_expect_str_eq(c.mcp.host, "my-host_1.example.COM");
}

Test(config_errors, duplicate_keys) {
    expect_error("server:\n  port: 1\n  host: x\n  port: 2\n", 4, "server.port",
                 "duplicate key 'port' (first set on line 2)");
    expect_error("log: {level: info}\nserver: {}\nlog: {access: true}\n", 3, "log",
                 "duplicate key 'log' (first set on line 1)");
    expect_error("{\"a\": {\"b\": 1, \"b\": 2}}", 1, "a.b", "duplicate key 'b'");
}

Test(config_errors, yaml_syntax_errors_carry_libyaml_problem_and_line) {
    expect_error("server:\n  port: 1\n host: x\n", 3, "",
                 "YAML syntax error: did not find expected key (while parsing a block mapping "
                 "on line 1)");
    expect_error("server: {port: 1\nlog: x\n", 2, "", "did not find expected ',' or '}'");
    expect_error("a: 1\nb: \"abc\n", 3, "", "found unexpected end of stream");
    expect_error("server:\n\tport: 1\n", 2, "", "found character that cannot start any token");
    expect_error("server:\n  host: ::\n", 2, "", "mapping values are not allowed");
}

Test(config_errors, invalid_utf8_names_the_line) {
    expect_error("log: {}\n# caf\xc3\xa9 is fine\nserver: {host: caf\xff}\n", 3, "",
                 "invalid input: invalid leading UTF-8 octet");
}

Test(config_errors, anchors_aliases_and_tags_are_rejected) {
    expect_error("server: &base\n  port: 1\n", 1, "server", "anchors (&base) are not supported");
    expect_error("http:\n  max_body: 1\nserver:\n  port: *p\n", 4, "server.port",
                 "aliases (*p) are not supported");
    expect_error("server:\n  port: !!int 80\n", 2, "server.port",
                 "tags (tag:yaml.org,2002:int) are not supported");
    expect_error("server: !custom {}\n", 1, "server", "tags (!custom) are not supported");
}

Test(config_errors, complex_keys_and_nul_keys) {
    expect_error("log: {}\n? [a, b]\n: 1\n", 2, "",
                 "mapping keys must be plain strings, not a sequence");
    expect_error("? {a: 1}\n: 1\n", 1, "", "not a mapping");
    expect_error("\"se\\0rver\": {}\n", 1, "", "a key contains a NUL character");
}

Test(config_errors, only_one_document) {
    expect_error("server: {}\n---\nlog: {}\n", 2, "", "a second YAML document (---)");
}

Test(config_errors, nesting_depth_is_bounded) {
    char doc[256] = "";
    for (int i = 0; i < 70; i++)
        strcat(doc, "[");
    nx_config_t c;
    nx_config_error_t err;
    cr_assert_eq(load(&c, doc, &err), NX_ECONFIG);
    cr_expect_eq(err.line, 1);
    cr_expect_eq(strncmp(err.key, "[0][0][0]", 9), 0, "%s", err.key);
    cr_expect_str_eq(err.message, "nested deeper than 64 levels");
    /* 64 levels are fine for the tree (the config then rejects the top-level sequence) */
    doc[64] = '\0';
    for (int i = 0; i < 64; i++)
        strcat(doc, "]");
    expect_error(doc, 1, "", "expected a mapping at the top level, got a sequence");
}

Test(config_errors, strings_where_numbers_go_are_read_by_their_text) {
    /* Quoted scalars are converted by their text, as environment values are. */
    nx_config_t c;
    load_ok(&c, "server: {port: '8080'}\nlog: {access: 'yes'}\n");
    cr_expect_eq(c.rest.port, 8080);
    cr_expect(c.access_log);
}

/* ---- environment ---- */

Test(config_env, aliases) {
    char *env[] = {"PATH=/usr/bin",         "NEXUS_HOST=0.0.0.0",     "NEXUS_PORT=8081",
                   "NEXUS_MCP_HOST=::1",    "NEXUS_MCP_PORT=3001",    "NEXUS_SHARDS=3",
                   "NEXUS_LOG_LEVEL=debug", "NEXUS_DEBUG_ROUTES=yes", NULL};
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0, "%s: %s", err.key, err.message);
    cr_expect_str_eq(c.rest.host, "0.0.0.0");
    cr_expect_eq(c.rest.port, 8081);
    cr_expect_str_eq(c.mcp.host, "::1");
    cr_expect_eq(c.mcp.port, 3001);
    cr_expect_eq(c.shards, 3);
    cr_expect_eq(c.log_level, NX_LOG_DEBUG);
    cr_expect(c.debug_routes);
    cr_expect_str_eq(c.origin[slot("server.port")].file, "environment");
    cr_expect_str_eq(c.origin[slot("server.port")].key, "NEXUS_PORT");
}

Test(config_env, generic_form_is_case_insensitive) {
    char *env[] = {"NEXUS_HTTP__MAX_BODY=1MiB", "NEXUS_Http__Header_Timeout=5s",
                   "NEXUS_MCP__ENABLED=false",  "NEXUS_SHUTDOWN__GRACE=1m",
                   "NEXUS_LOG__ACCESS=on",      NULL};
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0, "%s: %s", err.key, err.message);
    cr_expect_eq(c.http.max_body, 1u << 20);
    cr_expect_eq(c.http.header_timeout_ms, 5000);
    cr_expect_not(c.mcp.enabled);
    cr_expect_eq(c.drain_timeout_ms, 60000);
    cr_expect(c.access_log);
}

Test(config_env, other_variables_are_ignored) {
    char *env[] = {"NEXUS_URL=http://localhost:8000",
                   "NEXUS_TOKEN=x",
                   "FOO__BAR=1",
                   "NEXUSPORT=1",
                   "nexus_port=1",
                   "NEXUS_PORT_X=1",
                   "NEXUS_NOEQUALS",
                   NULL};
    nx_config_t c, d;
    nx_config_error_t err;
    nx_config_defaults(&c);
    nx_config_defaults(&d);
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0, "%s: %s", err.key, err.message);
    expect_same_values(&c, &d);
    cr_expect_eq(nx_config_apply_env(&c, NULL, &err), 0);
}

static void expect_env_error(char **env, const char *var, const char *msg) {
    nx_config_t c, before;
    nx_config_error_t err;
    nx_config_defaults(&c);
    before = c;
    cr_assert_eq(nx_config_apply_env(&c, env, &err), NX_ECONFIG, "expected an error for %s", var);
    cr_expect_str_eq(err.file, "environment");
    cr_expect_eq(err.line, 0);
    cr_expect_str_eq(err.key, var);
    cr_expect(strstr(err.message, msg) != NULL, "message '%s' lacks '%s'", err.message, msg);
    cr_expect_eq(memcmp(&c, &before, sizeof(c)), 0, "a failed apply changed the config");
}

Test(config_env, bad_values_name_the_variable) {
    char *a[] = {"NEXUS_SHARDS=2", "NEXUS_PORT=abc", NULL};
    expect_env_error(a, "NEXUS_PORT", "expected a port number (0..65535), got 'abc'");
    char *b[] = {"NEXUS_PORT=", NULL};
    expect_env_error(b, "NEXUS_PORT", "got an empty value");
    char *d[] = {"NEXUS_HTTP__MAX_BODY=10 furlongs", NULL};
    expect_env_error(d, "NEXUS_HTTP__MAX_BODY", "unknown unit 'furlongs'");
    char *e[] = {"NEXUS_LOG_LEVEL=loud", NULL};
    expect_env_error(e, "NEXUS_LOG_LEVEL", "expected a log level");
}

Test(config_env, unknown_generic_names_are_errors) {
    char *a[] = {"NEXUS_HTTP__MAX_BDOY=1", NULL};
    expect_env_error(a, "NEXUS_HTTP__MAX_BDOY",
                     "unknown key 'http.max_bdoy'; did you mean 'http.max_body'?");
    char *b[] = {"NEXUS_SERVERS__URL=x", NULL};
    expect_env_error(b, "NEXUS_SERVERS__URL", "unknown key 'servers.url'");
    char *d[] = {"NEXUS_HTTP__=1", NULL};
    expect_env_error(d, "NEXUS_HTTP__", "unknown key 'http.'");
}

Test(config_env, two_variables_for_one_key_conflict) {
    char *a[] = {"NEXUS_PORT=1", "NEXUS_SERVER__PORT=2", NULL};
    expect_env_error(a, "NEXUS_SERVER__PORT", "conflicts with NEXUS_PORT (both set server.port)");
}

/* ---- flags and precedence ---- */

Test(config_set, sets_one_key_and_records_the_flag) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_set(&c, "server.port", "8080", "command line", "--port", &err), 0);
    cr_expect_eq(c.rest.port, 8080);
    cr_expect_str_eq(c.origin[slot("server.port")].file, "command line");
    cr_expect_str_eq(c.origin[slot("server.port")].key, "--port");
    cr_assert_eq(nx_config_set(&c, "http.max_body", "2MB", NULL, NULL, &err), 0);
    cr_expect_eq(c.http.max_body, 2000000);
    cr_expect_str_eq(c.origin[slot("http.max_body")].key, "http.max_body");
}

Test(config_set, errors_name_the_origin) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_set(&c, "server.port", "x", "command line", "--port", &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "command line");
    cr_expect_eq(err.line, 0);
    cr_expect_str_eq(err.key, "--port");
    cr_expect_str_eq(err.message, "expected a port number (0..65535), got 'x'");
    cr_expect_eq(c.rest.port, 8000);

    cr_assert_eq(nx_config_set(&c, "server.prot", "1", NULL, NULL, &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "command line");
    cr_expect_str_eq(err.key, "server.prot");
    cr_expect_str_eq(err.message, "unknown key 'server.prot'; did you mean 'server.port'?");

    cr_assert_eq(nx_config_set(&c, "http", "1", NULL, "--set", &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "'http' is a section, not a key");

    cr_assert_eq(nx_config_set(&c, "mcp.enabled", NULL, NULL, NULL, &err), NX_ECONFIG);
    cr_expect(strstr(err.message, "got an empty value") != NULL);
}

Test(config_set, precedence_defaults_file_env_flags) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, "server:\n  port: 1000\n  shards: 2\nlog:\n  level: warn\n");
    char *env[] = {"NEXUS_PORT=2000", "NEXUS_LOG_LEVEL=error", NULL};
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0);
    cr_assert_eq(nx_config_set(&c, "server.port", "3000", "command line", "--port", &err), 0);
    cr_expect_eq(c.rest.port, 3000);         /* flag beats env and file */
    cr_expect_eq(c.log_level, NX_LOG_ERROR); /* env beats file */
    cr_expect_eq(c.shards, 2);               /* file beats default */
    cr_expect_eq(c.mcp.port, 3000);          /* default */
    cr_expect_eq(c.origin[slot("server.port")].line, 0);
    cr_expect_eq(c.origin[slot("server.shards")].line, 3); /* still points into the file */
}

/* ---- durations and sizes ---- */

Test(config_units, durations) {
    struct {
        const char *s;
        uint64_t ms;
    } ok[] = {{"250ms", 250},  {"10s", 10000},   {"1.5s", 1500},
              {"2m", 120000},  {"1h", 3600000},  {"100", 100},
              {"10 s", 10000}, {"0", 0},         {"1.25m", 75000},
              {"10S", 10000},  {"0.001s", 1},    {"1.000000000000000000000s", 1000},
              {"007ms", 7},    {"1.5h", 5400000}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        char msg[256] = "";
        cr_expect_eq(nx_config_parse_duration(ok[i].s, strlen(ok[i].s), &v, msg, sizeof(msg)), 0,
                     "%s: %s", ok[i].s, msg);
        cr_expect_eq(v, ok[i].ms, "%s gave %llu", ok[i].s, (unsigned long long)v);
    }
    struct {
        const char *s, *msg;
    } bad[] = {
        {"", "got an empty value"},
        {"s", "expected a duration like 10s or 250ms, got 's'"},
        {"10x", "unknown unit 'x' in '10x' (use ms, s, m or h)"},
        {"10us", "unknown unit 'us'"},
        {"-1s", "'-1s' must not be negative"},
        {"1.0005s", "is not a whole number of milliseconds"},
        {"0.5", "'0.5' is not a whole number of milliseconds"},
        {"1.s", "expected a duration"},
        {".5s", "expected a duration"},
        {"99999999999999999999", "is too large"},
        {"5124095576030432h", "is too large"},
        {"10s ", "unknown unit 's '"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 777;
        char msg[256] = "";
        cr_expect_eq(nx_config_parse_duration(bad[i].s, strlen(bad[i].s), &v, msg, sizeof(msg)),
                     NX_ECONFIG, "%s", bad[i].s);
        cr_expect(strstr(msg, bad[i].msg) != NULL, "%s: '%s' lacks '%s'", bad[i].s, msg,
                  bad[i].msg);
        cr_expect_eq(v, 777, "a failed parse wrote its output");
    }
    uint64_t v;
    cr_expect_eq(nx_config_parse_duration("x", 1, &v, NULL, 0), NX_ECONFIG);
    cr_expect_eq(nx_config_parse_duration("10s\0junk", 8, &v, NULL, 0), NX_ECONFIG);
}

Test(config_units, sizes) {
    struct {
        const char *s;
        uint64_t bytes;
    } ok[] = {{"16KiB", 16384},
              {"10MiB", 10485760},
              {"1GiB", 1073741824},
              {"1KB", 1000},
              {"1MB", 1000000},
              {"1GB", 1000000000},
              {"1k", 1024},
              {"1M", 1048576},
              {"1G", 1073741824},
              {"512B", 512},
              {"512", 512},
              {"1.5KiB", 1536},
              {"2 MiB", 2097152},
              {"10mib", 10485760},
              {"0", 0},
              {"0.5k", 512},
              {"17179869183GiB", 17179869183ull << 30}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        char msg[256] = "";
        cr_expect_eq(nx_config_parse_size(ok[i].s, strlen(ok[i].s), &v, msg, sizeof(msg)), 0,
                     "%s: %s", ok[i].s, msg);
        cr_expect_eq(v, ok[i].bytes, "%s gave %llu", ok[i].s, (unsigned long long)v);
    }
    struct {
        const char *s, *msg;
    } bad[] = {
        {"1.1B", "'1.1B' is not a whole number of bytes"},
        {"10XB", "unknown unit 'XB' in '10XB' (use B, KiB, MiB, GiB, KB, MB or GB)"},
        {"1TiB", "unknown unit 'TiB'"},
        {"-1", "'-1' must not be negative"},
        {"abc", "expected a size like 16KiB or 10MiB, got 'abc'"},
        {"18446744073709551616", "is too large"},
        {"17179869184GiB", "is too large"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 777;
        char msg[256] = "";
        cr_expect_eq(nx_config_parse_size(bad[i].s, strlen(bad[i].s), &v, msg, sizeof(msg)),
                     NX_ECONFIG, "%s", bad[i].s);
        cr_expect(strstr(msg, bad[i].msg) != NULL, "%s: '%s' lacks '%s'", bad[i].s, msg,
                  bad[i].msg);
        cr_expect_eq(v, 777);
    }
}

Test(config_units, long_values_are_shortened_in_messages) {
    char doc[300] = "server:\n  port: ";
    memset(doc + strlen(doc), '9', 100);
    nx_config_t c;
    nx_config_error_t err;
    cr_assert_eq(load(&c, doc, &err), NX_ECONFIG);
    cr_expect(strstr(err.message, "9999...' is out of range (0..65535)") != NULL, "%s",
              err.message);
}

/* ---- validation ---- */

static void expect_invalid(const nx_config_t *c, const char *file, int line, const char *key,
                           const char *msg) {
    nx_config_error_t err;
    cr_assert_eq(nx_config_validate(c, &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, file);
    cr_expect_eq(err.line, line);
    cr_expect_str_eq(err.key, key);
    cr_expect(strstr(err.message, msg) != NULL, "message '%s' lacks '%s'", err.message, msg);
}

Test(config_validate, listeners_on_one_port_point_at_the_file_line) {
    nx_config_t c;
    load_ok(&c, "server:\n  port: 8000\nmcp:\n  host: 127.0.0.1\n  port: 8000\n");
    expect_invalid(&c, "nexus.yaml", 5, "mcp.port",
                   "server (127.0.0.1) and mcp (127.0.0.1) both listen on port 8000");
}

Test(config_validate, listeners_on_one_port_point_at_the_variable) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    char *env[] = {"NEXUS_MCP_PORT=8000", NULL};
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0);
    expect_invalid(&c, "environment", 0, "NEXUS_MCP_PORT", "both listen on port 8000");
    /* the server side moved instead: blame the server flag */
    nx_config_defaults(&c);
    cr_assert_eq(nx_config_set(&c, "server.port", "3000", NULL, "--port", &err), 0);
    expect_invalid(&c, "command line", 0, "--port", "both listen on port 3000");
}

Test(config_validate, wildcards_overlap_other_hosts) {
    nx_config_t c;
    load_ok(&c, "server: {host: 0.0.0.0, port: 9000}\nmcp: {host: 127.0.0.1, port: 9000}\n");
    expect_invalid(&c, "nexus.yaml", 2, "mcp.port", "both listen on port 9000");
    load_ok(&c, "server: {host: 127.0.0.1, port: 9000}\nmcp: {host: '::', port: 9000}\n");
    expect_invalid(&c, "nexus.yaml", 2, "mcp.port", "both listen on port 9000");
}

Test(config_validate, separate_hosts_port_zero_and_disabled_mcp_are_fine) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, "server: {host: 127.0.0.1, port: 9000}\nmcp: {host: 127.0.0.2, port: 9000}\n");
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
    load_ok(&c, "server: {port: 0}\nmcp: {port: 0}\n");
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
    load_ok(&c, "server: {port: 3000}\nmcp: {enabled: false}\n");
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
}

Test(config_validate, uri_must_fit_in_the_head) {
    nx_config_t c;
    load_ok(&c, "http:\n  max_header_bytes: 4KiB\n");
    expect_invalid(&c, "nexus.yaml", 2, "http.max_header_bytes",
                   "http.max_uri (8192) must not exceed http.max_header_bytes (4096)");
    load_ok(&c, "http:\n  max_uri: 32KiB\n");
    expect_invalid(&c, "nexus.yaml", 2, "http.max_uri", "must not exceed");
}

Test(config_validate, nothing_enabled) {
    nx_config_t c;
    load_ok(&c, "mcp:\n  enabled: off\n");
    c.rest.enabled = false;
    expect_invalid(&c, "nexus.yaml", 2, "mcp.enabled", "nothing to serve");
}

Test(config_validate, values_set_by_code_are_range_checked) {
    nx_config_t c;
    nx_config_defaults(&c);
    c.http.max_headers = 500;
    expect_invalid(&c, "defaults", 0, "http.max_headers", "500 is out of range (1..128)");
    nx_config_defaults(&c);
    c.http.header_timeout_ms = 0;
    expect_invalid(&c, "defaults", 0, "http.header_timeout", "0ms is out of range (1ms..1h)");
    nx_config_defaults(&c);
    c.mcp.host[0] = '\0';
    expect_invalid(&c, "defaults", 0, "mcp.host", "got an empty value");
    nx_config_defaults(&c);
    c.log_level = (nx_log_level_t)9;
    expect_invalid(&c, "defaults", 0, "log.level", "out of range");
    nx_config_defaults(&c);
    c.mcp.port = 8000;
    expect_invalid(&c, "defaults", 0, "mcp.port", "both listen on port 8000");
}

/* ---- formatting ---- */

Test(config_format, file_line_key_message) {
    nx_config_error_t e = {.file = "nexus.yaml", .line = 3, .key = "server.port", .message = "bad"};
    char out[256];
    nx_config_error_format(&e, out, sizeof(out));
    cr_expect_str_eq(out, "nexus.yaml:3: server.port: bad");
    e.line = 0;
    snprintf(e.file, sizeof(e.file), "environment");
    snprintf(e.key, sizeof(e.key), "NEXUS_PORT");
    nx_config_error_format(&e, out, sizeof(out));
    cr_expect_str_eq(out, "environment: NEXUS_PORT: bad");
    e.key[0] = '\0';
    nx_config_error_format(&e, out, sizeof(out));
    cr_expect_str_eq(out, "environment: bad");
    nx_config_error_format(&e, out, 8);
    cr_expect_str_eq(out, "environ");
    out[0] = 'x';
    nx_config_error_format(&e, out, 0);
    cr_expect_eq(out[0], 'x');
}

Test(config_format, a_real_error_formats_with_its_line) {
    nx_config_t c;
    nx_config_error_t err;
    char out[512];
    cr_assert_eq(load(&c, "server:\n  prot: 1\n", &err), NX_ECONFIG);
    nx_config_error_format(&err, out, sizeof(out));
    cr_expect_str_eq(out, "nexus.yaml:2: server.prot: unknown key 'prot'; did you mean 'port'?");
}

/* ---- JSON export ---- */

Test(config_json, defaults_keyed_like_the_file) {
    nx_config_t c;
    nx_config_defaults(&c);
    json_t *j = nx_config_to_json(&c);
    cr_assert_not_null(j);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "server"), "host")),
                     "127.0.0.1");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "server"), "port")), 8000);
    cr_expect(json_is_true(json_object_get(json_object_get(j, "mcp"), "enabled")));
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "log"), "level")),
                     "info");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "http"), "max_body")),
                 10485760);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "http"), "header_timeout")),
                 10000);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "shutdown"), "grace")),
                 10000);
    cr_expect(json_is_false(json_object_get(j, "debug_routes")));
    json_t *fed = json_object_get(j, "federation");
    cr_expect_str_eq(json_string_value(json_object_get(fed, "separator")), "__");
    cr_expect_eq(json_integer_value(json_object_get(fed, "list_budget")), 2000);
    cr_expect(json_is_array(json_object_get(j, "servers")));
    cr_expect_eq(json_array_size(json_object_get(j, "servers")), 0);
    json_t *cache = json_object_get(j, "cache");
    cr_expect_str_eq(json_string_value(json_object_get(cache, "eviction")), "lru");
    cr_expect_str_eq(json_string_value(json_object_get(cache, "compression")), "lz4");
    cr_expect_str_eq(json_string_value(json_object_get(cache, "redis")), "");
    cr_expect_str_eq(json_string_value(json_object_get(cache, "redis_prefix")), "nexus:");
    cr_expect_eq(json_integer_value(json_object_get(cache, "stale_grace")), 60000);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "executions"), "max_stored")),
                 10000);
    cr_expect_eq(json_object_size(j), 10);
    json_decref(j);
}

Test(config_cache, words_urls_and_prefixes_are_checked) {
    nx_config_t c;
    load_ok(&c, "cache:\n  eviction: CLOCK\n  compression: zstd\n"
                "  redis: redis://:s3cret@127.0.0.1:6380/4\n  redis_prefix: \"app1:\"\n");
    cr_expect_eq(c.cache.eviction, 1);
    cr_expect_eq(c.cache.compression, 2);
    cr_expect_str_eq(c.cache.redis, "redis://:s3cret@127.0.0.1:6380/4");
    cr_expect_str_eq(c.cache.redis_prefix, "app1:");
    char host[256], pw[256], msg[128];
    uint16_t port;
    uint32_t db;
    cr_assert_eq(nx_config_parse_redis_url(c.cache.redis, host, &port, pw, &db, msg, sizeof(msg)),
                 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 6380);
    cr_expect_str_eq(pw, "s3cret");
    cr_expect_eq(db, 4);
    cr_assert_eq(nx_config_parse_redis_url("redis://[::1]", host, &port, pw, &db, msg, sizeof(msg)),
                 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 6379);
    nx_config_dispose(&c);
    expect_error("cache:\n  eviction: fifo\n", 2, "cache.eviction", "not one of lru/clock");
    expect_error("cache:\n  compression: gzip\n", 2, "cache.compression",
                 "not one of none/lz4/zstd");
    expect_error("cache:\n  redis: http://x\n", 2, "cache.redis", "must start with redis://");
    expect_error("cache:\n  redis: redis://h:0\n", 2, "cache.redis", "port must be 1..65535");
    expect_error("cache:\n  redis: redis://h/x\n", 2, "cache.redis", "database");
    expect_error("cache:\n  redis_prefix: a b\n", 2, "cache.redis_prefix", "without spaces");
}

Test(config_cache, a_servers_cache_names_its_tools_and_ttl) {
    nx_config_t c;
    load_ok(&c, "servers:\n  - name: s\n    transport: stdio\n    command: x\n"
                "    cache: {ttl: 5s, tools: {read: 250ms, list: 1m}}\n");
    cr_assert_eq(c.servers.count, 1);
    cr_expect_eq(c.servers.items[0].cache_ttl_ms, 5000);
    cr_assert_not_null(c.servers.items[0].cache_tools);
    cr_expect_str_eq(c.servers.items[0].cache_tools[0], "read=250");
    cr_expect_str_eq(c.servers.items[0].cache_tools[1], "list=60000");
    cr_expect_null(c.servers.items[0].cache_tools[2]);
    nx_config_t copy;
    cr_assert_eq(nx_config_copy(&copy, &c), 0);
    cr_expect_str_eq(copy.servers.items[0].cache_tools[1], "list=60000");
    nx_config_dispose(&copy);
    nx_config_dispose(&c);
    expect_error("servers:\n  - name: s\n    transport: stdio\n    command: x\n"
                 "    cache: {ttl: 5s, tool: {}}\n",
                 5, "servers[0].cache.tool", "unknown key");
    expect_error("servers:\n  - name: s\n    transport: stdio\n    command: x\n"
                 "    cache: {tools: [a]}\n",
                 5, "servers[0].cache.tools", "expected a mapping");
    expect_error("servers:\n  - name: s\n    transport: stdio\n    command: x\n"
                 "    cache: {tools: {a: soon}}\n",
                 5, "servers[0].cache.tools.a", "duration");
}

Test(config_json, round_trip_through_the_loader) {
    nx_config_t c, back;
    nx_config_error_t err;
    load_ok(&c, full_yaml);
    json_t *j = nx_config_to_json(&c);
    cr_assert_not_null(j);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    cr_assert_not_null(text);
    nx_config_defaults(&back);
    int rc = nx_config_load_string(&back, "status.json", text, strlen(text), &err);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s\n%s", err.file, err.line, err.key, err.message, text);
    free(text);
    expect_same_values(&c, &back);
    expect_full(&back);
}

/* ---- the document tree ---- */

static const char tree_yaml[] = "servers:\n"
                                "  - name: a\n"
                                "    url: \"http://x\"\n"
                                "    timeout: 5s\n"
                                "  - name: b\n"
                                "    tags: [x, y]\n"
                                "    extra:\n"
                                "empty: ~\n";

Test(config_tree, walk_sequences_and_mappings) {
    nx_cfg_node_t *root;
    nx_config_error_t err;
    cr_assert_eq(nx_cfg_parse("t.yaml", tree_yaml, strlen(tree_yaml), &root, &err), 0, "%s",
                 err.message);
    cr_assert_not_null(root);
    cr_expect_eq(nx_cfg_kind(root), NX_CFG_MAPPING);
    cr_expect_eq(nx_cfg_count(root), 2);
    cr_expect_null(nx_cfg_key(root));
    cr_expect_null(nx_cfg_parent(root));
    const nx_cfg_node_t *servers = nx_cfg_get(root, "servers");
    cr_assert_not_null(servers);
    cr_expect_eq(nx_cfg_kind(servers), NX_CFG_SEQUENCE);
    cr_expect_eq(nx_cfg_count(servers), 2);
    cr_expect_eq(nx_cfg_key_line(servers), 1);
    cr_expect_eq(nx_cfg_parent(servers), root);
    const nx_cfg_node_t *a = nx_cfg_at(servers, 0), *b = nx_cfg_at(servers, 1);
    cr_assert_not_null(b);
    cr_expect_null(nx_cfg_at(servers, 2));
    cr_expect_null(nx_cfg_key(a));
    const nx_cfg_node_t *url = nx_cfg_get(a, "url");
    size_t len = 0;
    cr_expect_str_eq(nx_cfg_text(url, &len), "http://x");
    cr_expect_eq(len, 8);
    cr_expect(nx_cfg_is_quoted(url));
    cr_expect_not(nx_cfg_is_quoted(nx_cfg_get(a, "name")));
    cr_expect_eq(nx_cfg_line(url), 3);
    cr_expect_str_eq(nx_cfg_key(url), "url");
    cr_expect_null(nx_cfg_text(servers, NULL));
    cr_expect_eq(nx_cfg_count(url), 0);
    cr_expect_null(nx_cfg_at(url, 0));
    cr_expect_null(nx_cfg_get(servers, "name"));
    cr_expect_null(nx_cfg_get(a, "nope"));

    char path[64];
    cr_expect_eq(nx_cfg_path(nx_cfg_at(nx_cfg_get(b, "tags"), 1), path, sizeof(path)), 18);
    cr_expect_str_eq(path, "servers[1].tags[1]");
    cr_expect_eq(nx_cfg_path(root, path, sizeof(path)), 0);
    cr_expect_str_eq(path, "");
    cr_expect_eq(nx_cfg_path(url, path, 8), 14, "returns the full length when truncated");
    cr_expect_str_eq(path, "servers");

    cr_expect(nx_cfg_is_null(nx_cfg_get(b, "extra")));
    cr_expect(nx_cfg_is_null(nx_cfg_get(root, "empty")));
    cr_expect_not(nx_cfg_is_null(url));
    cr_expect_not(nx_cfg_is_null(b));
    nx_cfg_free(root);
    nx_cfg_free(NULL);
}

Test(config_tree, typed_readers_fail_at_the_node) {
    nx_cfg_node_t *root;
    nx_config_error_t err;
    cr_assert_eq(nx_cfg_parse("t.yaml", tree_yaml, strlen(tree_yaml), &root, &err), 0);
    const nx_cfg_node_t *servers = nx_cfg_get(root, "servers");
    const nx_cfg_node_t *a = nx_cfg_at(servers, 0), *b = nx_cfg_at(servers, 1);
    uint64_t v;
    bool flag;
    char s[16];

    cr_expect_eq(nx_cfg_read_duration(nx_cfg_get(a, "timeout"), 1, 60000, &v, &err), 0);
    cr_expect_eq(v, 5000);
    cr_expect_eq(nx_cfg_read_duration(nx_cfg_get(a, "timeout"), 1, 1000, &v, &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "t.yaml");
    cr_expect_eq(err.line, 4);
    cr_expect_str_eq(err.key, "servers[0].timeout");
    cr_expect_str_eq(err.message, "'5s' is out of range (1ms..1s)");

    cr_expect_eq(nx_cfg_read_uint(nx_cfg_get(a, "name"), 0, 10, &v, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected an integer, got 'a'");
    cr_expect_eq(nx_cfg_read_size(nx_cfg_get(b, "tags"), 0, 10, &v, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected a size like 16KiB or 10MiB, got a sequence");
    cr_expect_eq(err.line, 6);
    cr_expect_eq(nx_cfg_read_bool(nx_cfg_get(b, "extra"), &flag, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message,
                     "expected a boolean (true/false, yes/no, on/off), got an empty value");
    cr_expect_eq(nx_cfg_read_string(nx_cfg_get(a, "url"), s, sizeof(s), &err), 0);
    cr_expect_str_eq(s, "http://x");
    cr_expect_eq(nx_cfg_read_string(nx_cfg_get(a, "url"), s, 5, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "is longer than 4 characters");
    cr_expect_eq(nx_cfg_read_string(servers, s, sizeof(s), &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected a string, got a sequence");
    cr_expect_eq(nx_cfg_read_string(nx_cfg_get(b, "extra"), s, sizeof(s), &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected a string, got an empty value");

    cr_expect_eq(nx_cfg_fail(&err, b, "custom %d", 7), NX_ECONFIG);
    cr_expect_str_eq(err.key, "servers[1]");
    cr_expect_eq(err.line, 5);
    cr_expect_str_eq(err.message, "custom 7");
    cr_expect_eq(nx_cfg_fail_key(&err, nx_cfg_get(b, "tags"), "k"), NX_ECONFIG);
    cr_expect_eq(err.line, 6);
    nx_cfg_free(root);
}

Test(config_tree, more_readers) {
    const char *doc = "n: 42\nb: off\nsz: 2KiB\nnul: \"a\\0b\"\nq: \"\"\nz: null\n";
    nx_cfg_node_t *root;
    nx_config_error_t err;
    cr_assert_eq(nx_cfg_parse("r.yaml", doc, strlen(doc), &root, &err), 0);
    uint64_t v;
    bool flag = true;
    char s[16];
    cr_expect_eq(nx_cfg_read_uint(nx_cfg_get(root, "n"), 0, 100, &v, &err), 0);
    cr_expect_eq(v, 42);
    cr_expect_eq(nx_cfg_read_uint(nx_cfg_get(root, "n"), 0, 10, &v, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "'42' is out of range (0..10)");
    cr_expect_eq(nx_cfg_read_bool(nx_cfg_get(root, "b"), &flag, &err), 0);
    cr_expect_not(flag);
    cr_expect_eq(nx_cfg_read_size(nx_cfg_get(root, "sz"), 0, 4096, &v, &err), 0);
    cr_expect_eq(v, 2048);
    cr_expect_eq(nx_cfg_read_string(nx_cfg_get(root, "nul"), s, sizeof(s), &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "contains a NUL character");
    cr_expect_str_eq(err.key, "nul");
    cr_expect_eq(nx_cfg_read_string(nx_cfg_get(root, "q"), s, sizeof(s), &err), 0);
    cr_expect_str_eq(s, "");
    cr_expect_eq(nx_cfg_read_string(nx_cfg_get(root, "z"), s, sizeof(s), &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected a string, got null");
    size_t len;
    cr_expect_eq(memcmp(nx_cfg_text(nx_cfg_get(root, "nul"), &len), "a\0b", 3), 0);
    cr_expect_eq(len, 3);
    nx_cfg_free(root);
}

Test(config_tree, check_keys_suggests) {
    const char *doc = "server:\n  name: a\n  tiemout: 1s\n";
    nx_cfg_node_t *root;
    nx_config_error_t err;
    cr_assert_eq(nx_cfg_parse("c.yaml", doc, strlen(doc), &root, &err), 0);
    const char *known[] = {"name", "url", "timeout"};
    const nx_cfg_node_t *server = nx_cfg_get(root, "server");
    cr_expect_eq(nx_cfg_check_keys(server, known, 3, &err), NX_ECONFIG);
    cr_expect_eq(err.line, 3);
    cr_expect_str_eq(err.key, "server.tiemout");
    cr_expect_str_eq(err.message, "unknown key 'tiemout'; did you mean 'timeout'?");
    const char *all[] = {"name", "tiemout"};
    cr_expect_eq(nx_cfg_check_keys(server, all, 2, &err), 0);
    cr_expect_eq(nx_cfg_check_keys(nx_cfg_get(server, "name"), all, 2, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected a mapping, got 'a'");
    nx_cfg_free(root);
}

Test(config_tree, empty_document_gives_no_root) {
    nx_cfg_node_t *root = (nx_cfg_node_t *)1;
    nx_config_error_t err;
    cr_expect_eq(nx_cfg_parse("e.yaml", "# nothing\n", 10, &root, &err), 0);
    cr_expect_null(root);
    cr_expect_eq(nx_cfg_parse("e.yaml", NULL, 0, &root, &err), 0);
    cr_expect_null(root);
    cr_expect_eq(nx_cfg_parse("e.yaml", "a: [", 4, &root, &err), NX_ECONFIG);
    cr_expect_null(root);
    cr_expect_str_eq(err.file, "e.yaml");
}

Test(config_load, oversized_file_is_refused) {
    char path[64];
    write_temp(path, sizeof(path), ".yaml", "");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < (5 << 20) / 64; i++)
        fputs("# padding padding padding padding padding padding padding pad\n", f);
    fclose(f);
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    int rc = nx_config_load_file(&c, path, &err);
    unlink(path);
    cr_assert_eq(rc, NX_ECONFIG);
    cr_expect_str_eq(err.file, path);
    cr_expect_eq(err.line, 0);
    cr_expect_str_eq(err.message, "file is larger than 4 MiB");
}

Test(config_tree, mapping_size_is_bounded) {
    size_t cap = 10001 * 16 + 1, n = 0;
    char *doc = malloc(cap);
    cr_assert_not_null(doc);
    for (int i = 0; i < 10001; i++)
        n += (size_t)snprintf(doc + n, cap - n, "k%d: 1\n", i);
    nx_cfg_node_t *root;
    nx_config_error_t err;
    int rc = nx_cfg_parse("big.yaml", doc, n, &root, &err);
    free(doc);
    cr_assert_eq(rc, NX_ECONFIG);
    cr_expect_eq(err.line, 10001);
    cr_expect_str_eq(err.message, "a mapping has more than 10000 keys");
}

/* ---- servers: and federation ---- */

/* Every key of every transport, none at its default. */
static const char servers_yaml[] =
    "federation:\n"                                         /* 1 */
    "  separator: \".\"\n"                                  /* 2 */
    "  list_budget: 750ms\n"                                /* 3 */
    "servers:\n"                                            /* 4 */
    "  - name: files\n"                                     /* 5 */
    "    transport: stdio\n"                                /* 6 */
    "    command: /usr/bin/env\n"                           /* 7 */
    "    args: [\"-y\", pkg, 42]\n"                         /* 8 */
    "    env: {KEY: value, EMPTY: \"\", _N2: 7}\n"          /* 9 */
    "    cwd: /tmp\n"                                       /* 10 */
    "    instances: 4\n"                                    /* 11 */
    "    prefix: false\n"                                   /* 12 */
    "    enabled: no\n"                                     /* 13 */
    "    timeouts: {connect: 1s, call: 3s, deadline: 9s}\n" /* 14 */
    "    retry: {attempts: 5, base: 10ms, cap: 1s, budget_percent: 30, min_retries: 7}\n"
    "    breaker: {enabled: false, window: 40, failure_rate: 25, slow_call: 2s, "
    "slow_call_rate: 80, minimum_calls: 15, open_for: 1m, half_open_calls: 5, probe_timeout: 3s}\n"
    "    bulkhead: {max_concurrent: 12}\n"
    "    health: {enabled: false, interval: 5s, timeout: 1s, healthy_after: 4, "
    "unhealthy_after: 6, eject_after: 0, base_ejection: 10s, max_ejection: 20m}\n"
    "    restart: {base: 500ms, cap: 10s}\n"          /* 19 */
    "    shutdown: {term_after: 0, kill_after: 3s}\n" /* 20 */
    "  - name: search-2\n"                            /* 21 */
    "    transport: http\n"
    "    urls: [\"http://10.0.0.5:8080/mcp?x=1\", \"http://[::1]:9/\", HTTP://Example.com]\n"
    "    balance: least_outstanding\n"
    "    headers: {Authorization: \"Bearer secret\", X-Trace: \"a\\tb\"}\n"
    "    pool: {max_connections: 8, max_idle: 2, idle_timeout: 5s, max_requests: 1000}\n"
    "    health: {path: /healthz}\n"
    "  - name: ws_1\n" /* 28 */
    "    transport: ws\n"
    "    url: ws://h:1/socket\n"
    "  - name: billing\n" /* 31 */
    "    transport: rest\n"
    "    url: http://billing.internal/api/v1\n"
    "  - name: legacy\n" /* 34 */
    "    transport: sse\n"
    "    url: http://127.0.0.1:3001/sse\n";

/* The same document as JSON. */
static const char servers_json[] =
    "{\"federation\": {\"separator\": \".\", \"list_budget\": \"750ms\"},\n"
    " \"servers\": [\n"
    "  {\"name\": \"files\", \"transport\": \"stdio\", \"command\": \"/usr/bin/env\",\n"
    "   \"args\": [\"-y\", \"pkg\", \"42\"], \"env\": {\"KEY\": \"value\", \"EMPTY\": \"\", "
    "\"_N2\": \"7\"},\n"
    "   \"cwd\": \"/tmp\", \"instances\": 4, \"prefix\": false, \"enabled\": false,\n"
    "   \"timeouts\": {\"connect\": \"1s\", \"call\": 3000, \"deadline\": \"9s\"},\n"
    "   \"retry\": {\"attempts\": 5, \"base\": \"10ms\", \"cap\": \"1s\", \"budget_percent\": 30, "
    "\"min_retries\": 7},\n"
    "   \"breaker\": {\"enabled\": false, \"window\": 40, \"failure_rate\": 25, \"slow_call\": "
    "\"2s\", \"slow_call_rate\": 80, \"minimum_calls\": 15, \"open_for\": \"1m\", "
    "\"half_open_calls\": 5, \"probe_timeout\": \"3s\"},\n"
    "   \"bulkhead\": {\"max_concurrent\": 12},\n"
    "   \"health\": {\"enabled\": false, \"interval\": \"5s\", \"timeout\": \"1s\", "
    "\"healthy_after\": 4, \"unhealthy_after\": 6, \"eject_after\": 0, \"base_ejection\": "
    "\"10s\", \"max_ejection\": \"20m\"},\n"
    "   \"restart\": {\"base\": \"500ms\", \"cap\": \"10s\"},\n"
    "   \"shutdown\": {\"term_after\": 0, \"kill_after\": \"3s\"}},\n"
    "  {\"name\": \"search-2\", \"transport\": \"http\",\n"
    "   \"urls\": [\"http://10.0.0.5:8080/mcp?x=1\", \"http://[::1]:9/\", "
    "\"HTTP://Example.com\"],\n"
    "   \"balance\": \"least_outstanding\",\n"
    "   \"headers\": {\"Authorization\": \"Bearer secret\", \"X-Trace\": \"a\\tb\"},\n"
    "   \"pool\": {\"max_connections\": 8, \"max_idle\": 2, \"idle_timeout\": \"5s\", "
    "\"max_requests\": 1000},\n"
    "   \"health\": {\"path\": \"/healthz\"}},\n"
    "  {\"name\": \"ws_1\", \"transport\": \"ws\", \"url\": \"ws://h:1/socket\"},\n"
    "  {\"name\": \"billing\", \"transport\": \"rest\", \"url\": "
    "\"http://billing.internal/api/v1\"},\n"
    "  {\"name\": \"legacy\", \"transport\": \"sse\", \"url\": \"http://127.0.0.1:3001/sse\"}\n"
    " ]}\n";

static size_t strv_len(char *const *v) {
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

/* Asserts the values of servers_yaml / servers_json; <lines> says whether entry lines are the
 * YAML ones. */
static void expect_servers(const nx_config_t *c, bool lines) {
    cr_expect_str_eq(c->servers.separator, ".");
    cr_expect_eq(c->servers.list_budget_ms, 750);
    cr_assert_eq(c->servers.count, 5);

    const nx_server_config_t *f = &c->servers.items[0];
    cr_expect_str_eq(f->name, "files");
    cr_expect_eq(f->transport, NX_SERVER_STDIO);
    if (lines) cr_expect_eq(f->line, 5);
    cr_expect_str_eq(f->command, "/usr/bin/env");
    cr_assert_eq(strv_len(f->args), 3);
    cr_expect_str_eq(f->args[0], "-y");
    cr_expect_str_eq(f->args[1], "pkg");
    cr_expect_str_eq(f->args[2], "42");
    cr_assert_eq(strv_len(f->env), 3);
    cr_expect_str_eq(f->env[0], "KEY=value");
    cr_expect_str_eq(f->env[1], "EMPTY=");
    cr_expect_str_eq(f->env[2], "_N2=7");
    cr_expect_str_eq(f->cwd, "/tmp");
    cr_expect_eq(f->instances, 4);
    cr_expect_not(f->prefix);
    cr_expect_not(f->enabled);
    cr_expect_eq(f->timeouts.connect_ms, 1000);
    cr_expect_eq(f->timeouts.call_ms, 3000);
    cr_expect_eq(f->timeouts.deadline_ms, 9000);
    cr_expect_eq(f->retry.attempts, 5);
    cr_expect_eq(f->retry.base_ms, 10);
    cr_expect_eq(f->retry.cap_ms, 1000);
    cr_expect_eq(f->retry.budget_percent, 30);
    cr_expect_eq(f->retry.min_retries, 7);
    cr_expect_not(f->breaker.enabled);
    cr_expect_eq(f->breaker.window, 40);
    cr_expect_eq(f->breaker.failure_rate, 25);
    cr_expect_eq(f->breaker.slow_call_ms, 2000);
    cr_expect_eq(f->breaker.slow_call_rate, 80);
    cr_expect_eq(f->breaker.minimum_calls, 15);
    cr_expect_eq(f->breaker.open_ms, 60000);
    cr_expect_eq(f->breaker.half_open_calls, 5);
    cr_expect_eq(f->breaker.probe_timeout_ms, 3000);
    cr_expect_eq(f->max_concurrent, 12);
    cr_expect_not(f->health.enabled);
    cr_expect_eq(f->health.interval_ms, 5000);
    cr_expect_eq(f->health.timeout_ms, 1000);
    cr_expect_eq(f->health.healthy_after, 4);
    cr_expect_eq(f->health.unhealthy_after, 6);
    cr_expect_eq(f->health.eject_after, 0);
    cr_expect_eq(f->health.base_ejection_ms, 10000);
    cr_expect_eq(f->health.max_ejection_ms, 1200000);
    cr_expect_str_eq(f->health.path, "");
    cr_expect_eq(f->restart_base_ms, 500);
    cr_expect_eq(f->restart_cap_ms, 10000);
    cr_expect_eq(f->shutdown_term_ms, 0);
    cr_expect_eq(f->shutdown_kill_ms, 3000);
    cr_expect_null(f->urls);
    cr_expect_null(f->endpoints);
    cr_expect_eq(f->url_count, 0);
    cr_expect_null(f->headers);

    const nx_server_config_t *h = &c->servers.items[1];
    cr_expect_str_eq(h->name, "search-2");
    cr_expect_eq(h->transport, NX_SERVER_HTTP);
    if (lines) cr_expect_eq(h->line, 21);
    cr_assert_eq(h->url_count, 3);
    cr_assert_eq(strv_len(h->urls), 3);
    cr_expect_str_eq(h->urls[0], "http://10.0.0.5:8080/mcp?x=1");
    cr_expect_str_eq(h->endpoints[0].host, "10.0.0.5");
    cr_expect_eq(h->endpoints[0].port, 8080);
    cr_expect_str_eq(h->endpoints[0].path, "/mcp?x=1");
    cr_expect_str_eq(h->endpoints[1].host, "::1");
    cr_expect_eq(h->endpoints[1].port, 9);
    cr_expect_str_eq(h->endpoints[1].path, "/");
    cr_expect_str_eq(h->urls[2], "HTTP://Example.com");
    cr_expect_str_eq(h->endpoints[2].host, "Example.com");
    cr_expect_eq(h->endpoints[2].port, 80);
    cr_expect_str_eq(h->endpoints[2].path, "/");
    cr_expect_eq(h->balance, NX_BALANCE_LEAST_OUTSTANDING);
    cr_assert_eq(strv_len(h->headers), 2);
    cr_expect_str_eq(h->headers[0], "Authorization: Bearer secret");
    cr_expect_str_eq(h->headers[1], "X-Trace: a\tb");
    cr_expect_eq(h->pool.max_connections, 8);
    cr_expect_eq(h->pool.max_idle, 2);
    cr_expect_eq(h->pool.idle_timeout_ms, 5000);
    cr_expect_eq(h->pool.max_requests, 1000);
    cr_expect_str_eq(h->health.path, "/healthz");
    cr_expect(h->prefix);
    cr_expect(h->enabled);
    cr_expect_null(h->args);
    cr_expect_null(h->env);
    cr_expect_str_eq(h->command, "");

    const nx_server_config_t *w = &c->servers.items[2];
    cr_expect_str_eq(w->name, "ws_1");
    cr_expect_eq(w->transport, NX_SERVER_WS);
    cr_assert_eq(w->url_count, 1);
    cr_expect_str_eq(w->urls[0], "ws://h:1/socket");
    cr_expect_str_eq(w->endpoints[0].host, "h");
    cr_expect_eq(w->endpoints[0].port, 1);
    cr_expect_str_eq(w->endpoints[0].path, "/socket");
    cr_expect_eq(w->balance, NX_BALANCE_ROUND_ROBIN);

    const nx_server_config_t *r = &c->servers.items[3];
    cr_expect_eq(r->transport, NX_SERVER_REST);
    cr_expect_str_eq(r->endpoints[0].host, "billing.internal");
    cr_expect_str_eq(r->endpoints[0].path, "/api/v1");
    cr_expect_str_eq(r->health.path, "/health", "rest backends check GET /health by default");
    cr_expect_eq(c->servers.items[4].transport, NX_SERVER_SSE);
    if (lines) cr_expect_eq(c->servers.items[4].line, 34);

    cr_expect_eq(nx_config_find_server(c, "billing"), r);
    cr_expect_null(nx_config_find_server(c, "nope"));
}

/* Asserts <s> holds every documented default (lists aside). */
static void expect_server_defaults(const nx_server_config_t *s) {
    cr_expect(s->enabled);
    cr_expect(s->prefix);
    cr_expect_eq(s->instances, 1);
    cr_expect_eq(s->restart_base_ms, 1000);
    cr_expect_eq(s->restart_cap_ms, 30000);
    cr_expect_eq(s->shutdown_term_ms, 2000);
    cr_expect_eq(s->shutdown_kill_ms, 2000);
    cr_expect_eq(s->pool.max_connections, 64);
    cr_expect_eq(s->pool.max_idle, 16);
    cr_expect_eq(s->pool.idle_timeout_ms, 60000);
    cr_expect_eq(s->pool.max_requests, 0);
    cr_expect_eq(s->timeouts.connect_ms, 2000);
    cr_expect_eq(s->timeouts.call_ms, 30000);
    cr_expect_eq(s->timeouts.deadline_ms, 60000);
    cr_expect_eq(s->retry.attempts, 3);
    cr_expect_eq(s->retry.base_ms, 25);
    cr_expect_eq(s->retry.cap_ms, 250);
    cr_expect_eq(s->retry.budget_percent, 20);
    cr_expect_eq(s->retry.min_retries, 3);
    cr_expect(s->breaker.enabled);
    cr_expect_eq(s->breaker.window, 20);
    cr_expect_eq(s->breaker.failure_rate, 50);
    cr_expect_eq(s->breaker.slow_call_ms, 5000);
    cr_expect_eq(s->breaker.slow_call_rate, 100);
    cr_expect_eq(s->breaker.minimum_calls, 10);
    cr_expect_eq(s->breaker.open_ms, 30000);
    cr_expect_eq(s->breaker.half_open_calls, 3);
    cr_expect_eq(s->breaker.probe_timeout_ms, 5000);
    cr_expect_eq(s->max_concurrent, 100);
    cr_expect(s->health.enabled);
    cr_expect_eq(s->health.interval_ms, 10000);
    cr_expect_eq(s->health.timeout_ms, 2000);
    cr_expect_eq(s->health.healthy_after, 2);
    cr_expect_eq(s->health.unhealthy_after, 3);
    cr_expect_eq(s->health.eject_after, 5);
    cr_expect_eq(s->health.base_ejection_ms, 30000);
    cr_expect_eq(s->health.max_ejection_ms, 300000);
}

Test(config_servers, every_key_from_yaml) {
    nx_config_t c;
    load_ok(&c, servers_yaml);
    expect_servers(&c, true);
    cr_expect_eq(c.origin[slot("federation.separator")].line, 2);
    nx_config_error_t err;
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s: %s", err.key, err.message);
    nx_config_dispose(&c);
    cr_expect_eq(c.servers.count, 0);
    cr_expect_null(c.servers.items);
    nx_config_dispose(&c); /* twice is harmless */
}

Test(config_servers, every_key_from_a_json_file) {
    char path[64];
    write_temp(path, sizeof(path), ".json", servers_json);
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    int rc = nx_config_load_file(&c, path, &err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s", err.file, err.line, err.key, err.message);
    expect_servers(&c, false);
    cr_expect_eq(c.servers.items[1].line, 13);
    nx_config_dispose(&c);
}

Test(config_servers, minimal_entries_get_the_defaults) {
    nx_config_t c;
    load_ok(&c, "servers:\n"
                "  - {name: a, transport: stdio, command: srv}\n"
                "  - {name: b, transport: http, url: \"http://h\"}\n"
                "  - {name: c, transport: rest, url: \"http://h:81\"}\n"
                "  - name: d\n"
                "    transport: ws\n"
                "    url: ws://h/\n"
                "    retry:\n"
                "    headers: {}\n");
    cr_assert_eq(c.servers.count, 4);
    for (size_t i = 0; i < c.servers.count; i++) {
        expect_server_defaults(&c.servers.items[i]);
        cr_expect_eq(c.servers.items[i].balance, NX_BALANCE_ROUND_ROBIN);
    }
    const nx_server_config_t *a = &c.servers.items[0], *b = &c.servers.items[1];
    cr_expect_str_eq(a->command, "srv");
    cr_expect_null(a->args);
    cr_expect_null(a->env);
    cr_expect_str_eq(a->cwd, "");
    cr_expect_eq(a->line, 2);
    cr_expect_str_eq(b->health.path, "", "an http backend is pinged unless given a path");
    cr_expect_str_eq(c.servers.items[2].health.path, "/health");
    cr_expect_eq(c.servers.items[2].endpoints[0].port, 81);
    cr_expect_null(c.servers.items[3].headers);
    cr_expect_eq(c.servers.items[3].line, 5);

    /* nx_server_config_defaults is the same table. */
    nx_server_config_t d;
    nx_server_config_defaults(&d, NX_SERVER_SSE);
    expect_server_defaults(&d);
    cr_expect_eq(d.transport, NX_SERVER_SSE);
    cr_expect_str_eq(d.health.path, "");
    nx_config_dispose(&c);
}

Test(config_servers, empty_and_commented_out_sections_hold_no_servers) {
    const char *docs[] = {"servers:\n", "servers: []\n", "servers:\n#  - name: a\n",
                          "servers: ~\n"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        nx_config_t c;
        load_ok(&c, docs[i]);
        cr_expect_eq(c.servers.count, 0, "%s", docs[i]);
        cr_expect_null(c.servers.items);
    }
}

Test(config_servers, example_block_loads_uncommented_and_shows_the_defaults) {
    const char *f = __FILE__, *tail = "tests/unit/engine/config_test.c";
    size_t n = strlen(f), t = strlen(tail);
    char path[4096];
    snprintf(path, sizeof(path), "%.*sexamples/nexus.yaml", (int)(n - t), f);
    FILE *in = fopen(path, "r");
    cr_assert_not_null(in, "%s", path);
    char *doc = calloc(1, 1 << 16), line[512];
    size_t len = 0;
    bool inside = false;
    cr_assert_not_null(doc);
    while (fgets(line, sizeof(line), in) != NULL) {
        if (strncmp(line, "# servers:", 10) == 0) inside = true;
        if (strncmp(line, "# When only one key", 19) == 0) inside = false;
        const char *out = line;
        if (inside) out = strncmp(line, "# ", 2) == 0 ? line + 2 : line + 1;
        len += (size_t)snprintf(doc + len, (1 << 16) - len, "%s", out);
    }
    fclose(in);
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    int rc = nx_config_load_string(&c, "example", doc, len, &err);
    free(doc);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s", err.file, err.line, err.key, err.message);
    cr_assert_eq(c.servers.count, 3);
    for (size_t i = 0; i < c.servers.count; i++)
        expect_server_defaults(&c.servers.items[i]);
    cr_expect_eq(c.servers.items[0].transport, NX_SERVER_STDIO);
    cr_expect_eq(c.servers.items[1].transport, NX_SERVER_HTTP);
    cr_expect_eq(c.servers.items[2].transport, NX_SERVER_REST);
    cr_expect_eq(c.servers.items[1].balance, NX_BALANCE_ROUND_ROBIN);
    cr_expect_eq(c.servers.items[2].balance, NX_BALANCE_LEAST_OUTSTANDING);
    cr_expect_eq(c.servers.items[2].url_count, 2);
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s: %s", err.key, err.message);
    nx_config_dispose(&c);
}

Test(config_servers, a_second_file_replaces_the_list_and_a_failed_one_keeps_it) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, "servers:\n  - {name: a, transport: stdio, command: x, args: [1, 2]}\n");
    nx_server_config_t *before = c.servers.items;
    const char *bad = "servers:\n  - {name: b, transport: stdio, command: y, args: [3]}\n"
                      "  - {name: c, transport: stdio}\n";
    cr_assert_eq(nx_config_load_string(&c, "bad.yaml", bad, strlen(bad), &err), NX_ECONFIG);
    cr_expect_eq(err.line, 3);
    cr_expect_eq(c.servers.items, before);
    cr_expect_str_eq(c.servers.items[0].args[1], "2");

    const char *other = "log: {level: warn}\n";
    cr_assert_eq(nx_config_load_string(&c, "log.yaml", other, strlen(other), &err), 0);
    cr_expect_eq(c.servers.count, 1, "a file without servers: keeps them");

    const char *two = "servers:\n  - {name: z, transport: http, url: \"http://h\"}\n";
    cr_assert_eq(nx_config_load_string(&c, "two.yaml", two, strlen(two), &err), 0);
    cr_assert_eq(c.servers.count, 1);
    cr_expect_str_eq(c.servers.items[0].name, "z");

    const char *none = "servers: []\n";
    cr_assert_eq(nx_config_load_string(&c, "none.yaml", none, strlen(none), &err), 0);
    cr_expect_eq(c.servers.count, 0);
    nx_config_dispose(&c);
}

Test(config_servers, copies_are_deep) {
    nx_config_t c, d;
    load_ok(&c, servers_yaml);
    cr_assert_eq(nx_config_copy(&d, &c), 0);
    nx_config_dispose(&c);
    expect_servers(&d, true); /* still whole after the original is gone */
    nx_config_t e;
    cr_assert_eq(nx_config_copy(&e, &d), 0);
    cr_expect_neq(e.servers.items, d.servers.items);
    cr_expect_neq(e.servers.items[0].args, d.servers.items[0].args);
    cr_expect_neq(e.servers.items[0].args[0], d.servers.items[0].args[0]);
    cr_expect_neq(e.servers.items[1].endpoints, d.servers.items[1].endpoints);
    nx_config_dispose(&d);
    nx_config_dispose(&e);
    nx_config_t f, g;
    nx_config_defaults(&f);
    cr_assert_eq(nx_config_copy(&g, &f), 0);
    cr_expect_null(g.servers.items);
}

Test(config_servers, json_export_redacts_secrets_and_loads_back) {
    nx_config_t c, back;
    nx_config_error_t err;
    load_ok(&c, servers_yaml);
    json_t *j = nx_config_to_json(&c);
    cr_assert_not_null(j);
    json_t *servers = json_object_get(j, "servers");
    cr_assert_eq(json_array_size(servers), 5);
    json_t *f = json_array_get(servers, 0), *h = json_array_get(servers, 1);
    cr_expect_str_eq(json_string_value(json_object_get(f, "transport")), "stdio");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(f, "env"), "KEY")), "***");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(f, "args"), 2)), "42");
    cr_expect_null(json_object_get(f, "urls"), "no keys of other transports");
    cr_expect_null(json_object_get(f, "pool"));
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(f, "timeouts"), "deadline")),
                 9000);
    json_t *hh = json_object_get(h, "headers");
    cr_expect_str_eq(json_string_value(json_object_get(hh, "Authorization")), "***");
    cr_expect_str_eq(json_string_value(json_object_get(hh, "X-Trace")), "***");
    cr_expect_null(json_object_get(h, "command"));
    cr_expect_not_null(json_object_get(h, "restart"), "reconnect backoff: every transport");
    cr_expect_null(json_object_get(h, "shutdown"), "process shutdown: stdio only");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(h, "health"), "path")),
                     "/healthz");
    cr_expect_null(json_object_get(json_object_get(json_array_get(servers, 2), "health"), "path"),
                   "ws backends are pinged");
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    cr_assert_not_null(text);
    cr_expect_null(strstr(text, "secret"), "a header value leaked into /status");
    cr_expect_null(strstr(text, "value"), "an env value leaked into /status");
    nx_config_defaults(&back);
    int rc = nx_config_load_string(&back, "status.json", text, strlen(text), &err);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s\n%s", err.file, err.line, err.key, err.message, text);
    free(text);
    cr_assert_eq(back.servers.count, 5);
    const nx_server_config_t *a = &c.servers.items[0], *b = &back.servers.items[0];
    cr_expect_eq(memcmp(&a->timeouts, &b->timeouts, sizeof(a->timeouts)), 0);
    cr_expect_eq(memcmp(&a->retry, &b->retry, sizeof(a->retry)), 0);
    cr_expect_eq(a->breaker.window, b->breaker.window);
    cr_expect_eq(a->health.max_ejection_ms, b->health.max_ejection_ms);
    cr_expect_eq(a->shutdown_kill_ms, b->shutdown_kill_ms);
    cr_expect_str_eq(b->env[0], "KEY=***");
    cr_expect_str_eq(back.servers.items[1].headers[0], "Authorization: ***");
    cr_expect_str_eq(back.servers.items[1].endpoints[1].host, "::1");
    cr_expect_eq(back.servers.items[1].pool.max_requests, 1000);
    cr_expect_str_eq(back.servers.separator, ".");
    nx_config_dispose(&c);
    nx_config_dispose(&back);
}

Test(config_servers, an_omitted_partner_follows_the_written_key) {
    nx_config_t c;
    load_ok(&c, "servers:\n"
                "  - name: a\n"
                "    transport: stdio\n"
                "    command: x\n"
                "    timeouts: {call: 90s}\n"
                "    retry: {base: 1s}\n"
                "    breaker: {minimum_calls: 50}\n"
                "    health: {base_ejection: 10m}\n"
                "    restart: {cap: 500ms}\n"
                "  - name: b\n"
                "    transport: http\n"
                "    url: http://h\n"
                "    timeouts: {deadline: 10s}\n"
                "    retry: {cap: 10ms}\n"
                "    breaker: {window: 5}\n"
                "    pool: {max_connections: 4}\n"
                "    health: {max_ejection: 10s}\n");
    const nx_server_config_t *a = &c.servers.items[0], *b = &c.servers.items[1];
    cr_expect_eq(a->timeouts.deadline_ms, 90000);
    cr_expect_eq(a->retry.cap_ms, 1000);
    cr_expect_eq(a->breaker.window, 50);
    cr_expect_eq(a->health.max_ejection_ms, 600000);
    cr_expect_eq(a->restart_base_ms, 500);
    cr_expect_eq(b->timeouts.call_ms, 10000);
    cr_expect_eq(b->retry.base_ms, 10);
    cr_expect_eq(b->breaker.minimum_calls, 5);
    cr_expect_eq(b->pool.max_idle, 4);
    cr_expect_eq(b->health.base_ejection_ms, 10000);
    nx_config_dispose(&c);
}

Test(config_servers, required_keys) {
    expect_error("servers:\n  - transport: stdio\n    command: x\n", 2, "servers[0]",
                 "missing required key 'name'");
    expect_error("servers:\n  - name: a\n", 2, "servers[0]",
                 "missing required key 'transport' (stdio, http, sse, ws or rest)");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    args: [x]\n", 2, "servers[0]",
                 "missing required key 'command' for transport stdio");
    expect_error("servers:\n  - name: a\n    transport: sse\n", 2, "servers[0]",
                 "missing required key 'url' (or 'urls') for transport sse");
    expect_error("log: {}\nservers:\n  - {name: a, transport: http}\n  - {name: b}\n", 3,
                 "servers[0]", "missing required key 'url'");
    expect_error("servers:\n  - name: a\n    transport: grpc\n", 3, "servers[0].transport",
                 "expected a transport (stdio, http, sse, ws or rest), got 'grpc'");
    expect_error("servers:\n  - name: a\n    transport: HTTP\n", 3, "servers[0].transport",
                 "got 'HTTP'");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: \"\"\n", 4,
                 "servers[0].command", "must not be empty");
}

Test(config_servers, names) {
    expect_error("servers:\n  - name: Files\n    transport: stdio\n", 2, "servers[0].name",
                 "'Files' is not a valid server name (1 to 64 of a-z, 0-9, _ and -)");
    expect_error("servers:\n  - name: \"a b\"\n", 2, "servers[0].name", "not a valid server name");
    expect_error("servers:\n  - name: \"\"\n", 2, "servers[0].name",
                 "an empty value is not a valid server name");
    expect_error("servers:\n  - name: "
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 2, "servers[0].name", "not a valid server name");
    expect_error("servers:\n  - name: [a]\n", 2, "servers[0].name",
                 "expected a string, got a sequence");
    nx_config_t c;
    load_ok(&c, "servers:\n  - name: "
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
                "    transport: stdio\n    command: x\n");
    cr_expect_eq(strlen(c.servers.items[0].name), 64);
    nx_config_dispose(&c);
    expect_error("servers:\n"
                 "  - {name: a, transport: stdio, command: x}\n"
                 "  - {name: b, transport: stdio, command: x}\n"
                 "  - {name: a, transport: http, url: \"http://h\"}\n",
                 4, "servers[2].name", "duplicate server name 'a' (servers[0], line 2)");
    /* Names are case-sensitive, but upper case is not allowed anyway; "a-b" and "a_b" differ. */
    load_ok(&c, "servers:\n"
                "  - {name: a-b, transport: stdio, command: x}\n"
                "  - {name: a_b, transport: stdio, command: x}\n");
    nx_config_dispose(&c);
}

Test(config_servers, a_name_must_not_contain_the_separator) {
    expect_error("servers:\n  - name: my__files\n    transport: stdio\n    command: x\n", 2,
                 "servers[0].name", "'my__files' contains the federation separator '__'");
    /* The separator may come after the servers in the file: it is checked at the end. */
    expect_error("servers:\n"
                 "  - {name: ok, transport: stdio, command: x}\n"
                 "  - name: a-b\n"
                 "    transport: stdio\n"
                 "    command: x\n"
                 "federation:\n"
                 "  separator: \"-\"\n",
                 3, "servers[1].name", "contains the federation separator '-'");
    nx_config_t c;
    load_ok(&c, "federation: {separator: \".\"}\n"
                "servers:\n  - {name: my__files, transport: stdio, command: x}\n");
    cr_expect_str_eq(c.servers.items[0].name, "my__files");
    nx_config_dispose(&c);
}

Test(config_servers, the_separator_from_the_environment_is_checked_by_validate) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, "servers:\n  - {name: ok, transport: stdio, command: x}\n"
                "  - {name: a-b, transport: stdio, command: x}\n");
    char *env[] = {"NEXUS_FEDERATION__SEPARATOR=-", "NEXUS_FEDERATION__LIST_BUDGET=5s", NULL};
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0, "%s", err.message);
    cr_expect_str_eq(c.servers.separator, "-");
    cr_expect_eq(c.servers.list_budget_ms, 5000);
    cr_expect_str_eq(c.origin[slot("federation.separator")].key, "NEXUS_FEDERATION__SEPARATOR");
    cr_assert_eq(nx_config_validate(&c, &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "nexus.yaml");
    cr_expect_eq(err.line, 3);
    cr_expect_str_eq(err.key, "servers[1].name");
    cr_expect_str_eq(err.message, "'a-b' contains the federation separator '-' (set in "
                                  "environment NEXUS_FEDERATION__SEPARATOR)");
    cr_assert_eq(nx_config_set(&c, "federation.separator", "::x", NULL, NULL, &err), NX_ECONFIG);
    cr_expect_str_eq(err.message, "expected 1 to 8 of the characters A-Z a-z 0-9 _ . -, got '::x'");
    cr_assert_eq(nx_config_set(&c, "federation.separator", "~~", NULL, NULL, &err), NX_ECONFIG);
    cr_assert_eq(nx_config_set(&c, "federation.separator", "/", NULL, NULL, &err), NX_ECONFIG);
    cr_assert_eq(nx_config_set(&c, "federation.separator", ".", NULL, NULL, &err), 0);
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
    nx_config_dispose(&c);
}

Test(config_servers, federation_keys) {
    expect_error("federation:\n  separator: \"123456789\"\n", 2, "federation.separator",
                 "expected 1 to 8 of the characters A-Z a-z 0-9 _ . -, got '123456789'");
    expect_error("federation:\n  separator: \"\"\n", 2, "federation.separator",
                 "got an empty value");
    expect_error("federation:\n  separator: \"a b\"\n", 2, "federation.separator", "got 'a b'");
    expect_error("federation:\n  list_budget: 0\n", 2, "federation.list_budget",
                 "'0' is out of range (1ms..1h)");
    expect_error("federation:\n  seperator: x\n", 2, "federation.seperator",
                 "did you mean 'separator'?");
    nx_config_t c;
    load_ok(&c, "federation: {separator: a.B-9_, list_budget: 1m}\n");
    cr_expect_str_eq(c.servers.separator, "a.B-9_");
    cr_expect_eq(c.servers.list_budget_ms, 60000);
}

Test(config_servers, keys_of_another_transport) {
    expect_error("servers:\n  - name: a\n    transport: http\n    url: http://h\n"
                 "    command: npx\n",
                 5, "servers[0].command", "only for transport stdio (this server uses http)");
    expect_error("servers:\n  - name: a\n    transport: ws\n    url: ws://h\n    args: []\n", 5,
                 "servers[0].args", "only for transport stdio");
    expect_error("servers:\n  - name: a\n    transport: rest\n    url: http://h\n"
                 "    shutdown: {term_after: 1s}\n",
                 5, "servers[0].shutdown", "only for transport stdio (this server uses rest)");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n"
                 "    url: http://h\n",
                 5, "servers[0].url",
                 "only for transports http, sse, ws and rest (this server uses stdio)");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n"
                 "    pool: {max_idle: 1}\n",
                 5, "servers[0].pool", "only for transports http, sse, ws and rest");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n"
                 "    headers: {A: b}\n",
                 5, "servers[0].headers", "only for transports http, sse, ws and rest");
    expect_error("servers:\n  - name: a\n    transport: ws\n    url: ws://h\n"
                 "    health:\n      interval: 1s\n      path: /h\n",
                 7, "servers[0].health.path",
                 "only for transports http and rest (sse and ws backends are checked with an MCP "
                 "ping) (this server uses ws)");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n"
                 "    health: {path: /h}\n",
                 5, "servers[0].health.path", "only for transports http and rest");
}

Test(config_servers, unknown_keys_suggest_the_closest) {
    expect_error("servers:\n  - name: a\n    transport: stdio\n    comand: x\n", 4,
                 "servers[0].comand", "unknown key 'comand'; did you mean 'command'?");
    expect_error("servers:\n  - name: a\n    transprot: stdio\n", 3, "servers[0].transprot",
                 "did you mean 'transport'?");
    expect_error("servers:\n  - {name: a, transport: stdio, command: x, retry: {attempt: 2}}\n", 2,
                 "servers[0].retry.attempt", "unknown key 'attempt'; did you mean 'attempts'?");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n    breaker:\n"
                 "      failure_rte: 5\n",
                 6, "servers[0].breaker.failure_rte", "did you mean 'failure_rate'?");
    expect_error("servers:\n  - name: a\n    frobnicate: 1\n", 3, "servers[0].frobnicate",
                 "unknown key 'frobnicate'");
    expect_error("servres:\n  - name: a\n", 1, "servres",
                 "unknown key 'servres'; did you mean 'servers'?");
    expect_error("server:\n  - name: a\n", 2, "server",
                 "expected a mapping, got a sequence (backends are listed under servers:)");
}

Test(config_servers, shapes) {
    expect_error("servers:\n  name: a\n", 2, "servers",
                 "expected a sequence of servers (- name: ...), got a mapping");
    expect_error("servers: files\n", 1, "servers", "expected a sequence of servers");
    expect_error("servers:\n  - files\n", 2, "servers[0]", "expected a mapping, got 'files'");
    expect_error("servers:\n  -\n", 2, "servers[0]", "expected a mapping, got an empty value");
    expect_error("servers:\n  - {name: a, transport: stdio, command: x, args: -y}\n", 2,
                 "servers[0].args", "expected a sequence of strings, got '-y'");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n    args:\n"
                 "      - ok\n      - [nested]\n",
                 7, "servers[0].args[1]", "expected a string, got a sequence");
    expect_error("servers:\n  - {name: a, transport: stdio, command: x, args: [~]}\n", 2,
                 "servers[0].args[0]", "expected a string, got null");
    expect_error("servers:\n  - {name: a, transport: stdio, command: x, env: [A=b]}\n", 2,
                 "servers[0].env",
                 "expected a mapping of variable names to values, got a sequence");
    expect_error("servers:\n  - {name: a, transport: stdio, command: [x]}\n", 2,
                 "servers[0].command", "expected a string, got a sequence");
    expect_error("servers:\n  - {name: a, transport: stdio, command: x, timeouts: 5s}\n", 2,
                 "servers[0].timeouts", "expected a mapping, got '5s'");
    expect_error("servers:\n  - {name: a, transport: stdio, command: x, prefix: maybe}\n", 2,
                 "servers[0].prefix", "expected a boolean (true/false, yes/no, on/off)");
    expect_error("servers:\n  - {name: a, transport: http, url: \"http://h\", balance: random}\n",
                 2, "servers[0].balance",
                 "expected round_robin or least_outstanding, got 'random'");
}

Test(config_servers, env_and_headers) {
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n    env:\n"
                 "      1X: a\n",
                 6, "servers[0].env.1X",
                 "'1X' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n    env:\n"
                 "      A-B: a\n",
                 6, "servers[0].env.A-B", "not a valid environment variable name");
    expect_error("servers:\n  - name: a\n    transport: stdio\n    command: x\n    env:\n"
                 "      A:\n",
                 6, "servers[0].env.A", "expected a string, got an empty value");
    const char *head = "servers:\n  - name: a\n    transport: http\n    url: http://h\n"
                       "    headers:\n";
    char doc[512];
    snprintf(doc, sizeof(doc), "%s      \"Bad Name\": x\n", head);
    expect_error(doc, 6, "servers[0].headers.Bad Name",
                 "'Bad Name' is not a valid HTTP header name");
    snprintf(doc, sizeof(doc), "%s      \"\": x\n", head);
    expect_error(doc, 6, "servers[0].headers.", "'' is not a valid HTTP header name");
    snprintf(doc, sizeof(doc), "%s      Content-Length: 5\n", head);
    expect_error(doc, 6, "servers[0].headers.Content-Length",
                 "'Content-Length' is set by nexus itself and cannot be configured");
    snprintf(doc, sizeof(doc), "%s      sec-websocket-protocol: x\n", head);
    expect_error(doc, 6, "servers[0].headers.sec-websocket-protocol", "set by nexus itself");
    snprintf(doc, sizeof(doc), "%s      X-A: \"a\\r\\nInjected: 1\"\n", head);
    expect_error(doc, 6, "servers[0].headers.X-A",
                 "a header value must not contain control characters");
    snprintf(doc, sizeof(doc), "%s      X-A: 1\n      x-a: 2\n", head);
    expect_error(doc, 7, "servers[0].headers.x-a",
                 "'x-a' repeats 'X-A' (header names ignore case)");
    snprintf(doc, sizeof(doc), "%s      X-A: [1]\n", head);
    expect_error(doc, 6, "servers[0].headers.X-A", "expected a string, got a sequence");
}

Test(config_servers, durations_and_ranges) {
    const char *head = "servers:\n  - name: a\n    transport: stdio\n    command: x\n";
    const struct {
        const char *tail, *key, *msg;
    } cases[] = {
        {"    timeouts: {call: 5x}\n", "servers[0].timeouts.call", "unknown unit 'x' in '5x'"},
        {"    timeouts: {call: -1s}\n", "servers[0].timeouts.call", "must not be negative"},
        {"    timeouts: {connect: 0}\n", "servers[0].timeouts.connect",
         "'0' is out of range (1ms..1h)"},
        {"    timeouts: {deadline: 2h}\n", "servers[0].timeouts.deadline",
         "'2h' is out of range (1ms..1h)"},
        {"    timeouts: {call: fast}\n", "servers[0].timeouts.call",
         "expected a duration like 10s or 250ms, got 'fast'"},
        {"    restart: {base: 0.5ms}\n", "servers[0].restart.base",
         "is not a whole number of milliseconds"},
        {"    instances: 65\n", "servers[0].instances", "'65' is out of range (1..64)"},
        {"    instances: 0\n", "servers[0].instances", "'0' is out of range (1..64)"},
        {"    retry: {attempts: 0}\n", "servers[0].retry.attempts", "out of range (1..10)"},
        {"    retry: {attempts: 11}\n", "servers[0].retry.attempts", "out of range (1..10)"},
        {"    retry: {budget_percent: 101}\n", "servers[0].retry.budget_percent",
         "out of range (0..100)"},
        {"    breaker: {window: 1025}\n", "servers[0].breaker.window", "out of range (1..1024)"},
        {"    breaker: {window: 0}\n", "servers[0].breaker.window", "out of range (1..1024)"},
        {"    breaker: {failure_rate: 0}\n", "servers[0].breaker.failure_rate",
         "out of range (1..100)"},
        {"    breaker: {slow_call_rate: 101}\n", "servers[0].breaker.slow_call_rate",
         "out of range (1..100)"},
        {"    breaker: {half_open_calls: 64}\n", "servers[0].breaker.half_open_calls",
         "out of range (1..63)"},
        {"    breaker: {enabled: sometimes}\n", "servers[0].breaker.enabled", "expected a boolean"},
        {"    bulkhead: {max_concurrent: 0}\n", "servers[0].bulkhead.max_concurrent",
         "out of range (1..1000000)"},
        {"    bulkhead: {max_concurrent: 1000001}\n", "servers[0].bulkhead.max_concurrent",
         "out of range (1..1000000)"},
        {"    health: {interval: 1ms}\n", "servers[0].health.interval", "out of range (10ms..1h)"},
        {"    health: {healthy_after: 0}\n", "servers[0].health.healthy_after",
         "out of range (1..1000)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "%s%s", head, cases[i].tail);
        expect_error(doc, 5, cases[i].key, cases[i].msg);
    }
    char doc[512];
    snprintf(doc, sizeof(doc),
             "servers:\n  - {name: a, transport: http, url: \"http://h\", pool: "
             "{max_connections: 0}}\n");
    expect_error(doc, 2, "servers[0].pool.max_connections", "out of range (1..100000)");
}

Test(config_servers, ordered_pairs_written_out_of_order) {
    const char *head = "servers:\n  - name: a\n    transport: stdio\n    command: x\n";
    const struct {
        const char *tail, *key, *msg;
        int line;
    } cases[] = {
        {"    retry: {base: 500ms, cap: 250ms}\n", "servers[0].retry.base",
         "500ms must not exceed cap (250ms)", 5},
        {"    timeouts:\n      call: 30s\n      deadline: 10s\n", "servers[0].timeouts.deadline",
         "10s must not be shorter than call (30s)", 7},
        {"    breaker: {window: 10, minimum_calls: 20}\n", "servers[0].breaker.minimum_calls",
         "20 must not exceed window (10)", 5},
        {"    health: {base_ejection: 10m, max_ejection: 5m}\n", "servers[0].health.base_ejection",
         "10m must not exceed max_ejection (5m)", 5},
        {"    restart: {base: 1m, cap: 30s}\n", "servers[0].restart.base",
         "1m must not exceed cap (30s)", 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "%s%s", head, cases[i].tail);
        expect_error(doc, cases[i].line, cases[i].key, cases[i].msg);
    }
    expect_error("servers:\n  - name: a\n    transport: rest\n    url: http://h\n"
                 "    pool: {max_connections: 8, max_idle: 32}\n",
                 5, "servers[0].pool.max_idle", "32 must not exceed max_connections (8)");
    nx_config_t c;
    load_ok(&c, "servers:\n  - {name: a, transport: stdio, command: x, timeouts: {call: 5s, "
                "deadline: 5s}, retry: {base: 1s, cap: 1s}}\n");
    cr_expect_eq(c.servers.items[0].timeouts.deadline_ms, 5000, "equal is fine");
    nx_config_dispose(&c);
}

Test(config_servers, urls_in_entries) {
    const char *head = "servers:\n  - name: a\n    transport: http\n";
    const struct {
        const char *tail, *key, *msg;
    } cases[] = {
        {"    url: 127.0.0.1:3001\n", "servers[0].url",
         "'127.0.0.1:3001' is not a URL; expected http://host[:port][/path]"},
        {"    url: ftp://h/\n", "servers[0].url", "unsupported scheme 'ftp'; use http://"},
        {"    url: ws://h/\n", "servers[0].url",
         "scheme 'ws' does not match transport http; use http://"},
        {"    url: https://h/mcp\n", "servers[0].url",
         "https:// needs TLS, which nexus does not support yet; use http://"},
        {"    url: http://h:0/\n", "servers[0].url", "port '0' is out of range (1..65535)"},
        {"    url: http://h:65536/\n", "servers[0].url", "port '65536' is out of range (1..65535)"},
        {"    url: http://h:99999999999999999999999/\n", "servers[0].url", "out of range"},
        {"    url: http://h:/\n", "servers[0].url",
         "':' after the host must be followed by a port number"},
        {"    url: http://h:8o/\n", "servers[0].url", "port '8o' is not a number"},
        {"    url: http://:80/\n", "servers[0].url", "has no host"},
        {"    url: http:///mcp\n", "servers[0].url", "has no host"},
        {"    url: http://user:pw@h/\n", "servers[0].url", "credentials in the URL"},
        {"    url: http://h/#top\n", "servers[0].url", "must not have a fragment"},
        {"    url: \"http://h/a b\"\n", "servers[0].url",
         "contains a space, control or non-ASCII character"},
        {"    url: \"http://[::1/\"\n", "servers[0].url", "is not closed by ']'"},
        {"    url: \"http://[zz]/\"\n", "servers[0].url", "'zz' is not an IPv6 address"},
        {"    url: \"http://[::1]x/\"\n", "servers[0].url", "unexpected 'x' after the host"},
        {"    url: http://a%b/\n", "servers[0].url", "'a%b' is not a valid host name or address"},
        {"    url: ~\n", "servers[0].url", "expected a string, got null"},
        {"    urls: http://h\n", "servers[0].urls", "expected a sequence of URLs, got 'http://h'"},
        {"    urls: []\n", "servers[0].urls", "expected 1 to 64 URLs, got 0"},
        {"    urls: [http://a, \"ws://b\"]\n", "servers[0].urls[1]", "scheme 'ws' does not match"},
        {"    urls: [http://a, http://b, http://a]\n", "servers[0].urls[2]", "repeats urls[0]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "%s%s", head, cases[i].tail);
        expect_error(doc, 4, cases[i].key, cases[i].msg);
    }
    expect_error("servers:\n  - name: a\n    transport: http\n    url: http://a\n"
                 "    urls: [http://b]\n",
                 5, "servers[0].urls", "set url or urls, not both");
    expect_error("servers:\n  - {name: a, transport: ws, url: \"wss://h/\"}\n", 2, "servers[0].url",
                 "wss:// needs TLS, which nexus does not support yet; use ws://");
    expect_error("servers:\n  - {name: a, transport: ws, url: \"http://h/\"}\n", 2,
                 "servers[0].url", "scheme 'http' does not match transport ws; use ws://");
    expect_error("servers:\n  - {name: a, transport: rest, url: \"HTTPS://h/\"}\n", 2,
                 "servers[0].url", "HTTPS:// needs TLS");

    /* 65 replicas are one too many. */
    char doc[4096];
    size_t n = (size_t)snprintf(doc, sizeof(doc), "%s    urls:\n", head);
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "      - http://h:%d\n", i + 1);
    expect_error(doc, 5, "servers[0].urls", "expected 1 to 64 URLs, got 65");
}

Test(config_servers, parse_url_directly) {
    nx_server_endpoint_t ep;
    char msg[256];
    const char *u = "http://[fe80::1]:3001/mcp/x?y=1&z";
    cr_assert_eq(nx_config_parse_url(u, strlen(u), NX_SERVER_HTTP, &ep, msg, sizeof(msg)), 0, "%s",
                 msg);
    cr_expect_str_eq(ep.host, "fe80::1");
    cr_expect_eq(ep.port, 3001);
    cr_expect_str_eq(ep.path, "/mcp/x?y=1&z");
    u = "http://h?q=1";
    cr_assert_eq(nx_config_parse_url(u, strlen(u), NX_SERVER_REST, &ep, msg, sizeof(msg)), 0);
    cr_expect_str_eq(ep.path, "/?q=1");
    cr_expect_eq(ep.port, 80);
    u = "ws://localhost:65535";
    cr_assert_eq(nx_config_parse_url(u, strlen(u), NX_SERVER_WS, &ep, msg, sizeof(msg)), 0);
    cr_expect_eq(ep.port, 65535);
    cr_expect_str_eq(ep.path, "/");
    cr_expect_eq(nx_config_parse_url(u, strlen(u), NX_SERVER_STDIO, &ep, msg, sizeof(msg)),
                 NX_ECONFIG);
    cr_expect_str_eq(msg, "transport stdio takes a command, not a URL");
    cr_expect_eq(nx_config_parse_url("http://h", 8, NX_SERVER_SSE, &ep, NULL, 0), 0);
    char big[2100];
    memset(big, 'a', sizeof(big));
    memcpy(big, "http://h/", 9);
    cr_expect_eq(nx_config_parse_url(big, sizeof(big), NX_SERVER_HTTP, &ep, msg, sizeof(msg)),
                 NX_ECONFIG);
    cr_expect_str_eq(msg, "the URL is longer than 2047 characters");
    cr_expect_str_eq(nx_server_transport_name(NX_SERVER_REST), "rest");
    cr_expect_str_eq(nx_server_transport_name(NX_SERVER_STDIO), "stdio");
    cr_expect_str_eq(nx_server_transport_name((nx_server_transport_t)99), "unknown");
}

Test(config_servers, health_path) {
    expect_error("servers:\n  - {name: a, transport: rest, url: \"http://h\", health: {path: "
                 "health}}\n",
                 2, "servers[0].health.path", "must start with '/'");
    expect_error("servers:\n  - {name: a, transport: rest, url: \"http://h\", health: {path: "
                 "\"\"}}\n",
                 2, "servers[0].health.path", "must not be empty");
    expect_error("servers:\n  - {name: a, transport: rest, url: \"http://h\", health: {path: "
                 "\"/a b\"}}\n",
                 2, "servers[0].health.path", "contains a space");
    nx_config_t c;
    load_ok(&c, "servers:\n  - {name: a, transport: rest, url: \"http://h\", health: {path: "
                "/ready?full=1}}\n");
    cr_expect_str_eq(c.servers.items[0].health.path, "/ready?full=1");
    nx_config_dispose(&c);
}

Test(config_servers, at_most_256_servers) {
    size_t cap = 300 * 64, n = 0;
    char *doc = malloc(cap);
    cr_assert_not_null(doc);
    n += (size_t)snprintf(doc + n, cap - n, "servers:\n");
    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(doc + n, cap - n, "  - {name: s%d, transport: stdio, command: x}\n",
                              i);
    nx_config_t c;
    load_ok(&c, doc);
    cr_expect_eq(c.servers.count, 256);
    cr_expect_eq(c.servers.items[255].line, 257);
    nx_config_dispose(&c);
    snprintf(doc + n, cap - n, "  - {name: s256, transport: stdio, command: x}\n");
    expect_error(doc, 258, "servers[256]", "more than 256 servers");
    free(doc);
}

Test(config_servers, environment_cannot_set_servers) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    char *env[] = {"NEXUS_SERVERS__0__URL=http://h", NULL};
    cr_assert_eq(nx_config_apply_env(&c, env, &err), NX_ECONFIG);
    cr_expect_str_eq(err.key, "NEXUS_SERVERS__0__URL");
    cr_expect_str_eq(err.message, "unknown key 'servers.0.url' (servers: is a list and is set in "
                                  "the file only)");
}

Test(config_servers, validate_checks_entries_built_by_code) {
    nx_config_t c;
    nx_config_error_t err;
    nx_config_defaults(&c);
    nx_server_config_t items[2];
    nx_server_config_defaults(&items[0], NX_SERVER_STDIO);
    nx_server_config_defaults(&items[1], NX_SERVER_STDIO);
    snprintf(items[0].name, sizeof(items[0].name), "x");
    snprintf(items[1].name, sizeof(items[1].name), "x");
    items[1].line = 9;
    c.servers.items = items; /* borrowed: not disposed */
    c.servers.count = 2;
    cr_assert_eq(nx_config_validate(&c, &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "defaults");
    cr_expect_eq(err.line, 9);
    cr_expect_str_eq(err.key, "servers[1].name");
    cr_expect_str_eq(err.message, "duplicate server name 'x' (servers[0])");
    snprintf(items[1].name, sizeof(items[1].name), "Y");
    cr_assert_eq(nx_config_validate(&c, &err), NX_ECONFIG);
    cr_expect(strstr(err.message, "not a valid server name") != NULL);
    snprintf(items[1].name, sizeof(items[1].name), "y");
    cr_expect_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
}

Test(config_servers, balance_also_spreads_calls_over_stdio_instances) {
    nx_config_t c;
    load_ok(&c, "servers:\n"
                "  - {name: pool, transport: stdio, command: srv, instances: 3,\n"
                "     balance: least_outstanding}\n");
    cr_assert_eq(c.servers.count, 1);
    cr_expect_eq(c.servers.items[0].instances, 3);
    cr_expect_eq(c.servers.items[0].balance, NX_BALANCE_LEAST_OUTSTANDING);
    nx_config_dispose(&c);
}

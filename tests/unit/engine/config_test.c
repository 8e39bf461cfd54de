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
                                "debug_routes: true\n";

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
    const char *names[] = {"servers", "workflows", "cache", "auth", "sessions", "rate_limits"};
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
    cr_expect_eq(json_object_size(j), 6);
    json_decref(j);
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

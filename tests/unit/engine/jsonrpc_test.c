/* The JSON-RPC codec: every message kind, every invalid shape with its code and message, id
 * recovery, batches and their limits, nesting depth, parse errors with positions, the builders
 * and encoder (round trips, one line per message, big integers, unicode), params helpers. */
#include <criterion/criterion.h>

#include "jsonrpc.h"
#include "nexus/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nx_rpc_decode_opts_t BATCHES = {.allow_batch = true};

/* Decodes <text> as one message, which must be valid, of <kind>. */
static nx_rpc_msg_t *decode_ok(nx_rpc_batch_t *b, const char *text, nx_rpc_kind_t kind) {
    int rc = nx_rpc_decode(text, strlen(text), NULL, b);
    cr_assert_eq(rc, 0, "%s: rc %d", text, rc);
    cr_assert_eq(b->count, 1);
    cr_assert_not(b->is_batch);
    nx_rpc_msg_t *m = &b->msgs[0];
    cr_assert_eq(m->kind, kind, "%s: kind %s (%s)", text, nx_rpc_kind_name(m->kind),
                 m->reject.message);
    return m;
}

/* Decodes <text> (single messages only), which must be rejected with <code> and a message
 * containing <why>; returns the rejected message for more checks. */
static nx_rpc_msg_t *decode_bad(nx_rpc_batch_t *b, const char *text, int code, const char *why) {
    int rc = nx_rpc_decode(text, strlen(text), NULL, b);
    cr_assert(rc == 0 || rc == NX_EPROTO, "%s: rc %d", text, rc);
    cr_assert_eq(b->count, 1);
    nx_rpc_msg_t *m = &b->msgs[0];
    cr_assert_eq(m->kind, NX_RPC_INVALID, "%s: decoded as %s", text, nx_rpc_kind_name(m->kind));
    cr_assert_eq(m->reject.code, code, "%s: code %d", text, m->reject.code);
    cr_assert(strstr(m->reject.message, why) != NULL, "%s: message '%s' lacks '%s'", text,
              m->reject.message, why);
    cr_assert_null(m->method);
    cr_assert_null(m->params);
    return m;
}

/* Asserts that <id> is the JSON written as <json> ("null" for NULL). */
static void assert_id(const json_t *id, const char *json) {
    if (strcmp(json, "null") == 0) {
        cr_assert(id == NULL || json_is_null(id));
        return;
    }
    json_t *want = json_loads(json, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(want);
    cr_assert(json_equal(id, want), "id mismatch, want %s", json);
    json_decref(want);
}

Test(jsonrpc, request_with_object_params) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m = decode_ok(
        &b,
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}",
        NX_RPC_REQUEST);
    cr_assert_str_eq(m->method, "tools/call");
    cr_assert(json_is_integer(m->id));
    cr_assert_eq(json_integer_value(m->id), 7);
    cr_assert_str_eq(json_string_value(json_object_get(m->params, "name")), "echo");
    cr_assert_null(m->result);
    cr_assert_null(m->error);
    cr_assert_not_null(m->root);
    nx_rpc_batch_dispose(&b);
    cr_assert_eq(b.count, 0);
    cr_assert_null(b.msgs);
    nx_rpc_batch_dispose(&b); /* twice is harmless */
    nx_rpc_batch_dispose(NULL);
}

Test(jsonrpc, request_with_string_id_array_params_or_none) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m =
        decode_ok(&b, "{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"sum\",\"params\":[1,2]}",
                  NX_RPC_REQUEST);
    cr_assert_str_eq(json_string_value(m->id), "a-1");
    cr_assert(json_is_array(m->params));
    nx_rpc_batch_dispose(&b);
    m = decode_ok(&b, " \n{\"method\":\"ping\",\"id\":0,\"jsonrpc\":\"2.0\"}\r\n", NX_RPC_REQUEST);
    cr_assert_str_eq(m->method, "ping");
    cr_assert_eq(json_integer_value(m->id), 0, "id 0 is an id, not a missing one");
    cr_assert_null(m->params);
    nx_rpc_batch_dispose(&b);
    /* Unknown members are not the codec's business. */
    m = decode_ok(&b, "{\"jsonrpc\":\"2.0\",\"id\":-3,\"method\":\"x\",\"extra\":{}}",
                  NX_RPC_REQUEST);
    cr_assert_eq(json_integer_value(m->id), -3);
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, notification) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m = decode_ok(
        &b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", NX_RPC_NOTIFICATION);
    cr_assert_str_eq(m->method, "notifications/initialized");
    cr_assert_null(m->id);
    cr_assert_null(m->params);
    nx_rpc_batch_dispose(&b);
    m = decode_ok(&b,
                  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
                  "\"progressToken\":\"t\",\"progress\":1}}",
                  NX_RPC_NOTIFICATION);
    cr_assert(json_is_object(m->params));
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, response) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m = decode_ok(&b, "{\"jsonrpc\":\"2.0\",\"id\":\"r\",\"result\":{\"tools\":[]}}",
                                NX_RPC_RESPONSE);
    cr_assert_str_eq(json_string_value(m->id), "r");
    cr_assert(json_is_array(json_object_get(m->result, "tools")));
    cr_assert_null(m->method);
    cr_assert_null(m->error);
    nx_rpc_batch_dispose(&b);
    /* Any JSON value is a result, null included. */
    m = decode_ok(&b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}", NX_RPC_RESPONSE);
    cr_assert(json_is_null(m->result));
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, error_response) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m = decode_ok(&b,
                                "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":-32601,"
                                "\"message\":\"Method not found\",\"data\":{\"m\":\"x\"}}}",
                                NX_RPC_ERROR_RESPONSE);
    cr_assert_eq(json_integer_value(m->id), 5);
    cr_assert_eq(m->error_code, NX_RPC_METHOD_NOT_FOUND);
    cr_assert_str_eq(m->error_message, "Method not found");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m->error, "data"), "m")),
                     "x");
    cr_assert_null(m->result);
    nx_rpc_batch_dispose(&b);
    /* A server that could not read the id answers with id null. */
    m = decode_ok(&b,
                  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"P\"}}",
                  NX_RPC_ERROR_RESPONSE);
    cr_assert_null(m->id);
    cr_assert_eq(m->error_code, NX_RPC_PARSE_ERROR);
    nx_rpc_batch_dispose(&b);
}

typedef struct bad_case {
    const char *text;
    const char *why;
    const char *id; /* the id the rejection must echo, as JSON */
} bad_case_t;

Test(jsonrpc, invalid_shapes_name_the_field_and_the_reason) {
    static const bad_case_t cases[] = {
        {"{\"id\":1,\"method\":\"a\"}", "\"jsonrpc\" must be \"2.0\", but it is missing", "1"},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"a\"}",
         "\"jsonrpc\" must be \"2.0\", but it is \"1.0\"", "1"},
        {"{\"jsonrpc\":\"2.0 \",\"id\":1,\"method\":\"a\"}", "but it is \"2.0 \"", "1"},
        {"{\"jsonrpc\":2.0,\"id\":1,\"method\":\"a\"}",
         "\"jsonrpc\" must be \"2.0\", but it is a fractional number", "1"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
         "\"method\" must be a string, but it is an integer", "1"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":null}", "\"method\" must be a string", "1"},
        {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"a\"}",
         "\"id\" must be a string or an integer, but it is a boolean", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"a\"}",
         "\"id\" must be a string or an integer, but it is a fractional number", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"a\"}",
         "\"id\" must be a string or an integer", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"a\"}",
         "\"id\" must be a string or an integer, but it is an object", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"a\"}", "but it is an array", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"a\"}",
         "\"id\" must be a string or an integer, but it is null", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"params\":\"x\"}",
         "\"params\" must be an object or an array, but it is a string", "1"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"params\":null}",
         "\"params\" must be an object or an array, but it is null", "1"},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":3}", "\"params\" must be an object",
         "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"a\",\"result\":1}",
         "a request must not have \"result\"", "\"q\""},
        {"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"a\",\"error\":{}}",
         "a request must not have \"error\"", "2"},
        {"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":1,\"error\":{\"code\":1,\"message\":\"m\"}}",
         "exactly one of \"result\" and \"error\"", "3"},
        {"{\"jsonrpc\":\"2.0\",\"id\":4}", "must have \"method\", \"result\" or \"error\"", "4"},
        {"{\"jsonrpc\":\"2.0\",\"result\":1}", "a response must have an \"id\"", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":1}",
         "\"id\" must be a string or an integer, but it is null", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":false,\"error\":{\"code\":1,\"message\":\"m\"}}",
         "\"id\" must be a string, an integer or null, but it is a boolean", "null"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":\"oops\"}",
         "\"error\" must be an object, but it is a string", "6"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"message\":\"m\"}}",
         "\"error.code\" must be an integer, but it is missing", "6"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"code\":-1.5,\"message\":\"m\"}}",
         "\"error.code\" must be an integer, but it is a fractional number", "6"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"code\":-1}}",
         "\"error.message\" must be a string, but it is missing", "6"},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"error\":{\"code\":-1,\"message\":7}}",
         "\"error.message\" must be a string, but it is an integer", "6"},
        {"42", "a message must be an object, but it is an integer", "null"},
        {"\"hi\"", "a message must be an object, but it is a string", "null"},
        {"null", "a message must be an object, but it is null", "null"},
        {"true", "a message must be an object, but it is a boolean", "null"},
        {"{}", "\"jsonrpc\" must be \"2.0\", but it is missing", "null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        nx_rpc_batch_t b;
        nx_rpc_msg_t *m = decode_bad(&b, cases[i].text, NX_RPC_INVALID_REQUEST, cases[i].why);
        assert_id(m->id, cases[i].id);
        nx_rpc_batch_dispose(&b);
    }
}

Test(jsonrpc, rejection_echoes_the_recovered_id) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m = decode_bad(&b, "{\"jsonrpc\":\"1.0\",\"id\":\"abc\",\"method\":\"x\"}",
                                 NX_RPC_INVALID_REQUEST, "\"jsonrpc\"");
    json_t *resp = nx_rpc_reject_new(m);
    nx_rpc_batch_dispose(&b); /* the response holds its own reference to the id */
    cr_assert_not_null(resp);
    char *s = nx_rpc_encode(resp, NULL);
    cr_assert_str_eq(s, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"error\":{\"code\":-32600,"
                        "\"message\":\"\\\"jsonrpc\\\" must be \\\"2.0\\\", but it is "
                        "\\\"1.0\\\"\"}}");
    free(s);
    json_decref(resp);
    /* The error response is itself a valid message. */
    m = decode_bad(&b, "[", NX_RPC_PARSE_ERROR, "Parse error");
    resp = nx_rpc_reject_new(m);
    nx_rpc_batch_dispose(&b);
    s = nx_rpc_encode(resp, NULL);
    json_decref(resp);
    m = decode_ok(&b, s, NX_RPC_ERROR_RESPONSE);
    cr_assert_null(m->id);
    cr_assert_eq(m->error_code, NX_RPC_PARSE_ERROR);
    free(s);
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, peer_text_in_messages_is_printable_ascii) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m =
        decode_bad(&b,
                   "{\"jsonrpc\":\"2.\\n\\u00e9"
                   "0123456789012345678901234567890123456789\",\"id\":1,\"method\":\"x\"}",
                   NX_RPC_INVALID_REQUEST, "but it is \"2.?");
    for (const char *c = m->reject.message; *c; c++)
        cr_assert(*c >= 0x20 && *c < 0x7f, "byte %#x in '%s'", (unsigned char)*c,
                  m->reject.message);
    cr_assert(strstr(m->reject.message, "...\"") != NULL, "long values are cut: %s",
              m->reject.message);
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, parse_errors_say_where) {
    nx_rpc_batch_t b;
    const char *text = "{\"jsonrpc\":\"2.0\",\n \"id\":1,\n \"method\": tools}";
    int rc = nx_rpc_decode(text, strlen(text), NULL, &b);
    cr_assert_eq(rc, NX_EPROTO);
    cr_assert_eq(b.count, 1);
    cr_assert_not(b.is_batch);
    nx_rpc_msg_t *m = &b.msgs[0];
    cr_assert_eq(m->kind, NX_RPC_INVALID);
    cr_assert_eq(m->reject.code, NX_RPC_PARSE_ERROR);
    cr_assert(strstr(m->reject.message, "Parse error at line 3, column") != NULL, "%s",
              m->reject.message);
    cr_assert(strstr(m->reject.message, "invalid token") != NULL, "jansson's text: %s",
              m->reject.message);
    cr_assert_null(m->root);
    cr_assert_null(m->id, "a parse error never recovers an id");
    nx_rpc_batch_dispose(&b);

    decode_bad(&b, "", NX_RPC_PARSE_ERROR, "line 1");
    nx_rpc_batch_dispose(&b);
    decode_bad(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"a\"", NX_RPC_PARSE_ERROR, "Parse error");
    nx_rpc_batch_dispose(&b);
    decode_bad(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"a\"} {}", NX_RPC_PARSE_ERROR, "end of file");
    nx_rpc_batch_dispose(&b);
    decode_bad(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}", NX_RPC_PARSE_ERROR,
               "unable to decode byte 0xff");
    nx_rpc_batch_dispose(&b);
    decode_bad(&b, "{\"jsonrpc\":\"2.0\",\"method\":\"a\\u0000b\"}", NX_RPC_PARSE_ERROR,
               "Parse error");
    nx_rpc_batch_dispose(&b);
    /* Beyond what json_int_t holds. */
    decode_bad(&b, "{\"jsonrpc\":\"2.0\",\"id\":18446744073709551616,\"method\":\"a\"}",
               NX_RPC_PARSE_ERROR, "too big");
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, duplicate_keys_are_refused) {
    nx_rpc_batch_t b;
    decode_bad(&b,
               "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"method\":\"tools/call\"}",
               NX_RPC_PARSE_ERROR, "duplicate object key");
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, only_len_bytes_are_read) {
    nx_rpc_batch_t b;
    const char buf[] = "{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n{\"jsonrpc\":\"2.0\"";
    cr_assert_eq(nx_rpc_decode(buf, 30, NULL, &b), 0);
    cr_assert_eq(b.msgs[0].kind, NX_RPC_NOTIFICATION);
    nx_rpc_batch_dispose(&b);
    cr_assert_eq(nx_rpc_decode(NULL, 0, NULL, &b), NX_EPROTO);
    cr_assert_eq(b.msgs[0].reject.code, NX_RPC_PARSE_ERROR);
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, batch_refused_unless_allowed) {
    nx_rpc_batch_t b;
    const char *text = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]";
    cr_assert_eq(nx_rpc_decode(text, strlen(text), NULL, &b), NX_EPROTO);
    cr_assert_eq(b.count, 1);
    cr_assert_not(b.is_batch, "the answer to a refused batch is a single error");
    cr_assert_eq(b.msgs[0].kind, NX_RPC_INVALID);
    cr_assert_eq(b.msgs[0].reject.code, NX_RPC_INVALID_REQUEST);
    cr_assert(strstr(b.msgs[0].reject.message, "batch (JSON array) is not allowed") != NULL);
    cr_assert_null(b.msgs[0].id);
    nx_rpc_batch_dispose(&b);

    cr_assert_eq(nx_rpc_decode(text, strlen(text), &BATCHES, &b), 0);
    cr_assert_eq(b.count, 1);
    cr_assert(b.is_batch, "a batch of one is answered with an array of one");
    cr_assert_eq(b.msgs[0].kind, NX_RPC_REQUEST);
    cr_assert_str_eq(b.msgs[0].method, "ping");
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, empty_batch) {
    nx_rpc_batch_t b;
    cr_assert_eq(nx_rpc_decode(" [ ] ", 5, &BATCHES, &b), NX_EPROTO);
    cr_assert_eq(b.count, 1);
    cr_assert_not(b.is_batch);
    cr_assert_eq(b.msgs[0].reject.code, NX_RPC_INVALID_REQUEST);
    cr_assert(strstr(b.msgs[0].reject.message, "batch must not be empty") != NULL);
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, mixed_batch_delivers_valid_elements_and_rejects_the_rest) {
    nx_rpc_batch_t b;
    const char *text =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"},"
        " 1,"
        " {\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\"},"
        " {\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":3},"
        " {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}},"
        " [],"
        " {\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":-1,\"message\":\"no\"}}]";
    cr_assert_eq(nx_rpc_decode(text, strlen(text), &BATCHES, &b), 0);
    cr_assert(b.is_batch);
    cr_assert_eq(b.count, 7);
    const nx_rpc_kind_t kinds[] = {NX_RPC_REQUEST,       NX_RPC_INVALID,  NX_RPC_NOTIFICATION,
                                   NX_RPC_INVALID,       NX_RPC_RESPONSE, NX_RPC_INVALID,
                                   NX_RPC_ERROR_RESPONSE};
    for (uint32_t i = 0; i < b.count; i++)
        cr_assert_eq(b.msgs[i].kind, kinds[i], "element %u is %s", i,
                     nx_rpc_kind_name(b.msgs[i].kind));
    cr_assert_str_eq(b.msgs[0].method, "tools/list");
    cr_assert(strstr(b.msgs[1].reject.message, "must be an object, but it is an integer") != NULL);
    cr_assert_null(b.msgs[1].id);
    cr_assert(strstr(b.msgs[3].reject.message, "\"method\" must be a string") != NULL);
    cr_assert_str_eq(json_string_value(b.msgs[3].id), "x", "the element's own id is recovered");
    cr_assert(strstr(b.msgs[5].reject.message, "but it is an array") != NULL,
              "nested arrays are not batches");
    cr_assert_eq(b.msgs[6].error_code, -1);
    /* Each element outlives the others' disposal by its own reference. */
    json_t *keep = json_incref(b.msgs[4].root);
    nx_rpc_batch_dispose(&b);
    cr_assert_eq(json_integer_value(json_object_get(keep, "id")), 9);
    json_decref(keep);
}

/* "[m,m,...]" with <n> copies of a small notification. */
static char *batch_of(uint32_t n) {
    const char *one = "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}";
    size_t len = strlen(one);
    char *s = malloc(2 + n * (len + 1));
    cr_assert_not_null(s);
    char *p = s;
    *p++ = '[';
    for (uint32_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        memcpy(p, one, len);
        p += len;
    }
    *p++ = ']';
    *p = '\0';
    return s;
}

Test(jsonrpc, batch_size_limit) {
    nx_rpc_batch_t b;
    char *s = batch_of(NX_RPC_DEFAULT_MAX_BATCH);
    cr_assert_eq(nx_rpc_decode(s, strlen(s), &BATCHES, &b), 0);
    cr_assert_eq(b.count, NX_RPC_DEFAULT_MAX_BATCH);
    nx_rpc_batch_dispose(&b);
    free(s);

    s = batch_of(NX_RPC_DEFAULT_MAX_BATCH + 1);
    cr_assert_eq(nx_rpc_decode(s, strlen(s), &BATCHES, &b), NX_EPROTO);
    cr_assert_eq(b.count, 1);
    cr_assert_not(b.is_batch);
    cr_assert_eq(b.msgs[0].reject.code, NX_RPC_INVALID_REQUEST);
    cr_assert(strstr(b.msgs[0].reject.message, "batch of 101 messages is more than the limit of "
                                               "100") != NULL,
              "%s", b.msgs[0].reject.message);
    nx_rpc_batch_dispose(&b);
    free(s);

    nx_rpc_decode_opts_t small = {.allow_batch = true, .max_batch = 3};
    s = batch_of(3);
    cr_assert_eq(nx_rpc_decode(s, strlen(s), &small, &b), 0);
    nx_rpc_batch_dispose(&b);
    free(s);
    s = batch_of(4);
    cr_assert_eq(nx_rpc_decode(s, strlen(s), &small, &b), NX_EPROTO);
    cr_assert(strstr(b.msgs[0].reject.message, "limit of 3") != NULL);
    nx_rpc_batch_dispose(&b);
    free(s);
}

/* A request whose params nest <levels> objects below the message: {"a":{"a":...{}}}. */
static char *nested_request(uint32_t levels, const char *id) {
    size_t cap = 64 + strlen(id) + (size_t)levels * 6;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    int n = snprintf(s, cap, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"m\",\"params\":", id);
    char *p = s + n;
    for (uint32_t i = 1; i < levels; i++)
        p += sprintf(p, "{\"a\":");
    *p++ = '{';
    for (uint32_t i = 0; i < levels; i++)
        *p++ = '}';
    *p++ = '}';
    *p = '\0';
    return s;
}

Test(jsonrpc, depth_limit) {
    nx_rpc_batch_t b;
    /* The message is level 1, so params may nest 63 levels under the default of 64. */
    char *s = nested_request(NX_RPC_DEFAULT_MAX_DEPTH - 1, "1");
    decode_ok(&b, s, NX_RPC_REQUEST);
    nx_rpc_batch_dispose(&b);
    free(s);

    s = nested_request(NX_RPC_DEFAULT_MAX_DEPTH, "\"deep\"");
    nx_rpc_msg_t *m = decode_bad(&b, s, NX_RPC_INVALID_REQUEST, "nests deeper than 64 levels");
    assert_id(m->id, "\"deep\"");
    nx_rpc_batch_dispose(&b);
    free(s);

    /* Arrays count too, and so do levels inside a result. */
    const char *arr = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[[[]]]}";
    nx_rpc_decode_opts_t shallow = {.max_depth = 3};
    cr_assert_eq(nx_rpc_decode(arr, strlen(arr), &shallow, &b), 0);
    cr_assert_eq(b.msgs[0].kind, NX_RPC_INVALID);
    cr_assert(strstr(b.msgs[0].reject.message, "deeper than 3 levels") != NULL);
    nx_rpc_batch_dispose(&b);
    shallow.max_depth = 4;
    cr_assert_eq(nx_rpc_decode(arr, strlen(arr), &shallow, &b), 0);
    cr_assert_eq(b.msgs[0].kind, NX_RPC_RESPONSE);
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, depth_limit_per_batch_element) {
    nx_rpc_batch_t b;
    const char *text = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":{\"a\":{}}},"
                       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"m\",\"params\":{}}]";
    nx_rpc_decode_opts_t o = {.allow_batch = true, .max_depth = 2};
    cr_assert_eq(nx_rpc_decode(text, strlen(text), &o, &b), 0);
    cr_assert_eq(b.count, 2);
    cr_assert_eq(b.msgs[0].kind, NX_RPC_INVALID);
    assert_id(b.msgs[0].id, "1");
    cr_assert_eq(b.msgs[1].kind, NX_RPC_REQUEST, "the batch array itself is not a level");
    nx_rpc_batch_dispose(&b);
}

Test(jsonrpc, nesting_beyond_the_parser_is_invalid_request_not_a_crash) {
    nx_rpc_batch_t b;
    size_t n = 100000;
    char *s = malloc(2 * n + 1);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    cr_assert_eq(nx_rpc_decode(s, 2 * n, &BATCHES, &b), NX_EPROTO);
    cr_assert_eq(b.msgs[0].reject.code, NX_RPC_INVALID_REQUEST);
    cr_assert(strstr(b.msgs[0].reject.message, "nests deeper than") != NULL);
    nx_rpc_batch_dispose(&b);
    free(s);
}

/* Encodes <msg> (consumed), decodes it again and returns the single message in <b>. */
static nx_rpc_msg_t *round_trip(nx_rpc_batch_t *b, json_t *msg, nx_rpc_kind_t kind) {
    cr_assert_not_null(msg);
    size_t len = 0;
    char *s = nx_rpc_encode(msg, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, strlen(s));
    cr_assert_null(memchr(s, '\n', len), "one line: %s", s);
    nx_rpc_msg_t *m = decode_ok(b, s, kind);
    cr_assert(json_equal(m->root, msg), "decode(encode(x)) != x for %s", s);
    free(s);
    json_decref(msg);
    return m;
}

Test(jsonrpc, builders_round_trip) {
    nx_rpc_batch_t b;
    json_t *id = json_integer(42);
    nx_rpc_msg_t *m =
        round_trip(&b, nx_rpc_request_new(id, "tools/call", json_pack("{s:s}", "name", "echo")),
                   NX_RPC_REQUEST);
    cr_assert_str_eq(m->method, "tools/call");
    cr_assert(json_equal(m->id, id));
    cr_assert_str_eq(json_string_value(json_object_get(m->params, "name")), "echo");
    nx_rpc_batch_dispose(&b);

    m = round_trip(&b, nx_rpc_request_new(id, "ping", NULL), NX_RPC_REQUEST);
    cr_assert_null(m->params, "NULL params are omitted");
    nx_rpc_batch_dispose(&b);

    m = round_trip(&b, nx_rpc_notification_new("notifications/progress", json_pack("[i]", 1)),
                   NX_RPC_NOTIFICATION);
    cr_assert_null(m->id);
    cr_assert(json_is_array(m->params));
    nx_rpc_batch_dispose(&b);

    m = round_trip(&b, nx_rpc_result_new(id, json_pack("{s:[]}", "tools")), NX_RPC_RESPONSE);
    cr_assert(json_equal(m->id, id));
    nx_rpc_batch_dispose(&b);

    m = round_trip(&b, nx_rpc_result_new(id, NULL), NX_RPC_RESPONSE);
    cr_assert(json_is_object(m->result) && json_object_size(m->result) == 0, "NULL result is {}");
    nx_rpc_batch_dispose(&b);

    m = round_trip(&b,
                   nx_rpc_error_new(id, NX_RPC_UNSUPPORTED_VERSION, "Unsupported protocol version",
                                    json_pack("{s:[s]}", "supported", "2026-07-28")),
                   NX_RPC_ERROR_RESPONSE);
    cr_assert_eq(m->error_code, -32022);
    cr_assert_str_eq(m->error_message, "Unsupported protocol version");
    cr_assert(json_is_array(json_object_get(json_object_get(m->error, "data"), "supported")));
    nx_rpc_batch_dispose(&b);

    m = round_trip(&b, nx_rpc_error_new(NULL, NX_RPC_PARSE_ERROR, "Parse error", NULL),
                   NX_RPC_ERROR_RESPONSE);
    cr_assert_null(m->id);
    cr_assert(json_is_null(json_object_get(m->root, "id")), "NULL id is written as null");
    cr_assert_null(json_object_get(m->error, "data"));
    nx_rpc_batch_dispose(&b);
    json_decref(id);
}

Test(jsonrpc, encoding_is_compact_and_exact) {
    json_t *id = json_string("a");
    json_t *msg = nx_rpc_result_new(id, json_pack("{s:f,s:b}", "x", 0.1, "ok", 1));
    char *s = nx_rpc_encode(msg, NULL);
    cr_assert_str_eq(s, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{\"x\":0.10000000000000001,"
                        "\"ok\":true}}");
    char small[8], big[256];
    size_t n = nx_rpc_encode_into(msg, small, sizeof(small));
    cr_assert_eq(n, strlen(s), "too small a buffer reports the size needed");
    n = nx_rpc_encode_into(msg, big, sizeof(big));
    cr_assert_eq(n, strlen(s));
    cr_assert_eq(memcmp(big, s, n), 0);
    free(s);
    json_decref(msg);
    json_decref(id);
}

Test(jsonrpc, encoded_strings_never_hold_a_raw_newline) {
    nx_rpc_batch_t b;
    json_t *id = json_integer(1);
    const char *text = "line1\nline2\r\n\ttab \xe2\x80\xa8 sep";
    json_t *msg = nx_rpc_result_new(
        id, json_pack("{s:s,s:{s:s}}", "text", text, "nested", "multi\nline", "a\nb"));
    char buf[256];
    size_t n = nx_rpc_encode_into(msg, buf, sizeof(buf));
    cr_assert(n > 0 && n < sizeof(buf));
    cr_assert_null(memchr(buf, '\n', n));
    cr_assert_null(memchr(buf, '\r', n));
    cr_assert_not_null(strstr(buf, "line1\\nline2\\r\\n\\ttab"));
    nx_rpc_msg_t *m = round_trip(&b, msg, NX_RPC_RESPONSE);
    cr_assert_str_eq(json_string_value(json_object_get(m->result, "text")), text);
    nx_rpc_batch_dispose(&b);
    /* Error messages too. */
    msg = nx_rpc_error_new(id, NX_RPC_INTERNAL_ERROR, "first\nsecond", NULL);
    m = round_trip(&b, msg, NX_RPC_ERROR_RESPONSE);
    cr_assert_str_eq(m->error_message, "first\nsecond");
    nx_rpc_batch_dispose(&b);
    json_decref(id);
}

Test(jsonrpc, large_integer_ids_are_exact) {
    static const char *ids[] = {"9223372036854775807", "-9223372036854775808", "9007199254740993",
                                "0"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"m\"}", ids[i]);
        nx_rpc_batch_t b;
        nx_rpc_msg_t *m = decode_ok(&b, text, NX_RPC_REQUEST);
        cr_assert(json_is_integer(m->id));
        char want[32];
        snprintf(want, sizeof(want), "%" JSON_INTEGER_FORMAT, json_integer_value(m->id));
        cr_assert_str_eq(want, ids[i]);
        json_t *resp = nx_rpc_result_new(m->id, NULL);
        char *s = nx_rpc_encode(resp, NULL);
        char expect[128];
        snprintf(expect, sizeof(expect), "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}", ids[i]);
        cr_assert_str_eq(s, expect, "the id is echoed digit for digit");
        free(s);
        json_decref(resp);
        nx_rpc_batch_dispose(&b);
    }
}

Test(jsonrpc, unicode_strings) {
    nx_rpc_batch_t b;
    /* Escapes, including a surrogate pair, decode to UTF-8. */
    nx_rpc_msg_t *m = decode_ok(&b,
                                "{\"jsonrpc\":\"2.0\",\"id\":\"\\u00e9\\ud83c\\udf89\",\"method\":"
                                "\"h\xc3\xa9llo/\xe6\x97\xa5\xe6\x9c\xac\"}",
                                NX_RPC_REQUEST);
    cr_assert_str_eq(json_string_value(m->id), "\xc3\xa9\xf0\x9f\x8e\x89");
    cr_assert_str_eq(m->method, "h\xc3\xa9llo/\xe6\x97\xa5\xe6\x9c\xac");
    json_t *id = json_incref(m->id);
    nx_rpc_batch_dispose(&b);
    m = round_trip(&b,
                   nx_rpc_request_new(id, "h\xc3\xa9llo/\xe6\x97\xa5\xe6\x9c\xac",
                                      json_pack("{s:s}", "q", "\xf0\x9f\x8e\x89")),
                   NX_RPC_REQUEST);
    cr_assert_str_eq(json_string_value(json_object_get(m->params, "q")), "\xf0\x9f\x8e\x89");
    nx_rpc_batch_dispose(&b);
    json_decref(id);
}

/* A stolen argument must be released even when the builder fails: the caller kept one extra
 * reference, so the count must come back to exactly 1. */
#define ASSERT_STOLEN(v, call)                                                                     \
    do {                                                                                           \
        json_t *v_ = (v);                                                                          \
        json_incref(v_);                                                                           \
        cr_assert_null(call, "%s", #call);                                                         \
        cr_assert_eq(v_->refcount, 1, "%s kept a reference", #call);                               \
        json_decref(v_);                                                                           \
    } while (0)

Test(jsonrpc, builders_refuse_bad_arguments_and_release_what_they_stole) {
    json_t *bad = json_true();
    json_t *real = json_real(1.5);
    json_t *id = json_integer(1);
    json_t *p = json_object(), *s = json_string("params"), *i = json_integer(3);
    ASSERT_STOLEN(p, nx_rpc_request_new(bad, "m", p));
    p = json_object();
    ASSERT_STOLEN(p, nx_rpc_request_new(NULL, "m", p)); /* a request needs an id */
    p = json_object();
    ASSERT_STOLEN(p, nx_rpc_request_new(id, NULL, p));
    ASSERT_STOLEN(s, nx_rpc_request_new(id, "m", s));
    ASSERT_STOLEN(i, nx_rpc_notification_new("m", i));
    p = json_object();
    ASSERT_STOLEN(p, nx_rpc_result_new(bad, p));
    p = json_object();
    ASSERT_STOLEN(p, nx_rpc_result_new(NULL, p)); /* a result needs an id */
    p = json_object();
    ASSERT_STOLEN(p, nx_rpc_error_new(bad, -1, "m", p));
    cr_assert_null(nx_rpc_error_new(real, -1, "m", NULL));
    cr_assert_eq(id->refcount, 1, "borrowed ids are not kept on failure");

    /* On success the id is shared, not copied, and the stolen value is owned by the message. */
    p = json_object();
    json_t *msg = nx_rpc_request_new(id, "m", p);
    cr_assert_not_null(msg);
    cr_assert_eq(id->refcount, 2);
    cr_assert_eq(p->refcount, 1);
    cr_assert_eq(json_object_get(msg, "params"), p);
    json_decref(msg);
    cr_assert_eq(id->refcount, 1);
    json_decref(real);
    json_decref(id);
    json_decref(bad);
}

Test(jsonrpc, error_messages_are_made_valid_utf8) {
    json_t *e = nx_rpc_error_new(NULL, NX_RPC_INTERNAL_ERROR, "bad \xff byte", NULL);
    cr_assert_not_null(e);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
                     "bad ? byte");
    json_decref(e);
    e = nx_rpc_error_new(NULL, NX_RPC_INTERNAL_ERROR, NULL, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
                     "");
    json_decref(e);
}

Test(jsonrpc, mcp_codes) {
    cr_assert_eq(NX_RPC_PARSE_ERROR, -32700);
    cr_assert_eq(NX_RPC_INVALID_REQUEST, -32600);
    cr_assert_eq(NX_RPC_METHOD_NOT_FOUND, -32601);
    cr_assert_eq(NX_RPC_INVALID_PARAMS, -32602);
    cr_assert_eq(NX_RPC_INTERNAL_ERROR, -32603);
    cr_assert_eq(NX_RPC_RESOURCE_NOT_FOUND, -32002);
    cr_assert_eq(NX_RPC_HEADER_MISMATCH, -32020);
    cr_assert_eq(NX_RPC_UNSUPPORTED_VERSION, -32022);
    cr_assert_str_eq(nx_rpc_kind_name(NX_RPC_REQUEST), "request");
    cr_assert_str_eq(nx_rpc_kind_name(NX_RPC_ERROR_RESPONSE), "error");
    cr_assert_str_eq(nx_rpc_kind_name(NX_RPC_INVALID), "invalid");
}

Test(jsonrpc, params_helpers) {
    json_t *p = json_pack("{s:s,s:i,s:b,s:{},s:f}", "name", "echo", "count", 3, "flag", 1,
                          "arguments", "ratio", 0.5);
    nx_rpc_error_t err = {0};
    const char *name = NULL;
    cr_assert_eq(nx_rpc_param_string(p, "name", true, &name, &err), 1);
    cr_assert_str_eq(name, "echo");
    json_int_t count = 0;
    cr_assert_eq(nx_rpc_param_int(p, "count", true, &count, &err), 1);
    cr_assert_eq(count, 3);
    bool flag = false;
    cr_assert_eq(nx_rpc_param_bool(p, "flag", false, &flag, &err), 1);
    cr_assert(flag);
    json_t *v = NULL;
    cr_assert_eq(nx_rpc_param(p, "arguments", NX_RPC_T_OBJECT, true, &v, &err), 1);
    cr_assert(json_is_object(v));
    cr_assert_eq(nx_rpc_param(p, "ratio", NX_RPC_T_NUMBER, true, &v, &err), 1);
    cr_assert_eq(nx_rpc_param(p, "count", NX_RPC_T_NUMBER, true, &v, &err), 1,
                 "an integer is a number");

    /* Optional and absent: 0, and the caller's default stands. */
    const char *cursor = "default";
    cr_assert_eq(nx_rpc_param_string(p, "cursor", false, &cursor, &err), 0);
    cr_assert_str_eq(cursor, "default");
    cr_assert_eq(nx_rpc_param_string(NULL, "cursor", false, &cursor, &err), 0,
                 "absent params hold no members");

    cr_assert_eq(nx_rpc_param_string(p, "count", true, &name, &err), NX_EPROTO);
    cr_assert_eq(err.code, NX_RPC_INVALID_PARAMS);
    cr_assert_str_eq(err.message, "params.count must be a string, but it is an integer");
    cr_assert_eq(nx_rpc_param_int(p, "ratio", false, &count, &err), NX_EPROTO,
                 "a wrong type fails even when optional");
    cr_assert_str_eq(err.message, "params.ratio must be an integer, but it is a fractional number");
    cr_assert_eq(nx_rpc_param_string(p, "uri", true, &name, &err), NX_EPROTO);
    cr_assert_str_eq(err.message, "params.uri must be a string, but it is missing");
    cr_assert_eq(nx_rpc_param_bool(NULL, "x", true, &flag, &err), NX_EPROTO);
    cr_assert_str_eq(err.message, "params.x must be a boolean, but it is missing");
    cr_assert_eq(nx_rpc_param(p, "name", NX_RPC_T_ARRAY, true, &v, &err), NX_EPROTO);
    cr_assert_str_eq(err.message, "params.name must be an array, but it is a string");
    json_decref(p);

    json_t *arr = json_pack("[s]", "echo");
    cr_assert_eq(nx_rpc_param_string(arr, "name", false, &name, &err), NX_EPROTO);
    cr_assert_eq(err.code, NX_RPC_INVALID_PARAMS);
    cr_assert_str_eq(err.message, "params must be an object, but it is an array");
    json_decref(arr);
}

Test(jsonrpc, progress_token) {
    nx_rpc_error_t err = {0};
    json_t *tok = NULL;
    json_t *p = json_pack("{s:{s:s}}", "_meta", "progressToken", "abc");
    cr_assert_eq(nx_rpc_progress_token(p, &tok, &err), 1);
    cr_assert_str_eq(json_string_value(tok), "abc");
    json_decref(p);

    p = json_pack("{s:{s:I}}", "_meta", "progressToken", (json_int_t)9007199254740993LL);
    cr_assert_eq(nx_rpc_progress_token(p, &tok, &err), 1);
    cr_assert_eq(json_integer_value(tok), 9007199254740993LL);
    json_decref(p);

    tok = NULL;
    p = json_pack("{s:{}}", "_meta");
    cr_assert_eq(nx_rpc_progress_token(p, &tok, &err), 0);
    cr_assert_null(tok);
    json_decref(p);
    p = json_pack("{s:s}", "name", "x");
    cr_assert_eq(nx_rpc_progress_token(p, &tok, &err), 0);
    json_decref(p);
    cr_assert_eq(nx_rpc_progress_token(NULL, &tok, &err), 0);

    p = json_pack("{s:{s:b}}", "_meta", "progressToken", 1);
    cr_assert_eq(nx_rpc_progress_token(p, &tok, &err), NX_EPROTO);
    cr_assert_eq(err.code, NX_RPC_INVALID_PARAMS);
    cr_assert_str_eq(err.message,
                     "params._meta.progressToken must be a string or an integer, but it is a "
                     "boolean");
    json_decref(p);
    p = json_pack("{s:s}", "_meta", "x");
    cr_assert_eq(nx_rpc_progress_token(p, &tok, &err), NX_EPROTO);
    cr_assert_str_eq(err.message, "params._meta must be an object, but it is a string");
    json_decref(p);
}

Test(jsonrpc, decoded_params_feed_the_helpers) {
    nx_rpc_batch_t b;
    nx_rpc_msg_t *m =
        decode_ok(&b,
                  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
                  "{\"name\":\"echo\",\"_meta\":{\"progressToken\":17}}}",
                  NX_RPC_REQUEST);
    nx_rpc_error_t err;
    const char *name;
    json_t *tok;
    cr_assert_eq(nx_rpc_param_string(m->params, "name", true, &name, &err), 1);
    cr_assert_str_eq(name, "echo");
    cr_assert_eq(nx_rpc_progress_token(m->params, &tok, &err), 1);
    cr_assert_eq(json_integer_value(tok), 17);
    nx_rpc_batch_dispose(&b);
}

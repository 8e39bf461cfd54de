/* libFuzzer target for engine/jsonrpc.c: any bytes, decoded with and without batches, must give
 * well-formed messages or a printable rejection, never crash or leak. Every valid message is
 * rebuilt with the builders, encoded on one line and decoded back to the same kind/method/id;
 * every rejection must encode as an error response that decodes back with the same id. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "nexus/errors.h"

static void check(int ok) {
    if (!ok) abort();
}

static int same_id(const json_t *a, const json_t *b) {
    if (a == NULL || b == NULL) return a == b;
    return json_equal(a, b);
}

/* Encodes <msg> (consumed), checks it is one line and decodes it as a single message. */
static void encode_decode(json_t *msg, nx_rpc_batch_t *back) {
    check(msg != NULL);
    size_t len = 0;
    char *s = nx_rpc_encode(msg, &len);
    check(s != NULL && len == strlen(s) && memchr(s, '\n', len) == NULL);
    char small[16];
    check(nx_rpc_encode_into(msg, small, sizeof(small)) == len);
    json_decref(msg);
    check(nx_rpc_decode(s, len, NULL, back) == 0 && back->count == 1 && !back->is_batch);
    free(s);
}

static void check_rejection(const nx_rpc_msg_t *m) {
    check(m->reject.code == NX_RPC_PARSE_ERROR || m->reject.code == NX_RPC_INVALID_REQUEST);
    check(m->reject.message[0] != '\0');
    for (const char *c = m->reject.message; *c; c++)
        check(*c >= 0x20 && *c < 0x7f);
    check(m->method == NULL && m->params == NULL && m->result == NULL && m->error == NULL);
    check(m->id == NULL || json_is_string(m->id) || json_is_integer(m->id));

    nx_rpc_batch_t back;
    encode_decode(nx_rpc_reject_new(m), &back);
    const nx_rpc_msg_t *r = &back.msgs[0];
    check(r->kind == NX_RPC_ERROR_RESPONSE && r->error_code == m->reject.code);
    check(strcmp(r->error_message, m->reject.message) == 0 && same_id(r->id, m->id));
    nx_rpc_batch_dispose(&back);
}

/* Rebuilds <m> from its parts with the builders; NULL when the builders cannot say it. */
static json_t *rebuild(const nx_rpc_msg_t *m) {
    switch (m->kind) {
    case NX_RPC_REQUEST:
        return nx_rpc_request_new(m->id, m->method, json_incref(m->params));
    case NX_RPC_NOTIFICATION:
        return nx_rpc_notification_new(m->method, json_incref(m->params));
    case NX_RPC_RESPONSE:
        return nx_rpc_result_new(m->id, json_incref(m->result));
    case NX_RPC_ERROR_RESPONSE:
        if (m->error_code < INT32_MIN || m->error_code > INT32_MAX) return NULL;
        return nx_rpc_error_new(m->id, (int)m->error_code, m->error_message,
                                json_incref(json_object_get(m->error, "data")));
    case NX_RPC_INVALID:
        break;
    }
    return NULL;
}

static void check_message(const nx_rpc_msg_t *m) {
    check(json_is_object(m->root));
    switch (m->kind) {
    case NX_RPC_REQUEST:
        check(m->method != NULL && (json_is_string(m->id) || json_is_integer(m->id)));
        break;
    case NX_RPC_NOTIFICATION:
        check(m->method != NULL && m->id == NULL);
        break;
    case NX_RPC_RESPONSE:
        check(m->result != NULL && m->id != NULL && m->method == NULL);
        break;
    case NX_RPC_ERROR_RESPONSE:
        check(json_is_object(m->error) && m->error_message != NULL);
        break;
    case NX_RPC_INVALID:
        abort();
    }
    check(m->params == NULL || json_is_object(m->params) || json_is_array(m->params));

    nx_rpc_batch_t back;
    json_t *rebuilt = rebuild(m);
    if (rebuilt != NULL) {
        encode_decode(rebuilt, &back);
        const nx_rpc_msg_t *r = &back.msgs[0];
        check(r->kind == m->kind && same_id(r->id, m->id));
        check((r->method == NULL) == (m->method == NULL));
        check(m->method == NULL || strcmp(r->method, m->method) == 0);
        check(r->params == m->params || json_equal(r->params, m->params));
        check(r->result == m->result || json_equal(r->result, m->result));
        check(r->error_code == m->error_code);
        nx_rpc_batch_dispose(&back);
    }
    /* The message as received survives a trip through the encoder unchanged. */
    encode_decode(json_incref(m->root), &back);
    check(back.msgs[0].kind == m->kind && json_equal(back.msgs[0].root, m->root));
    nx_rpc_batch_dispose(&back);
}

static void run(const uint8_t *data, size_t size, const nx_rpc_decode_opts_t *opts) {
    nx_rpc_batch_t b;
    int rc = nx_rpc_decode((const char *)data, size, opts, &b);
    if (rc == -ENOMEM) {
        check(b.count == 0 && b.msgs == NULL);
        return;
    }
    check(rc == 0 || rc == NX_EPROTO);
    check(b.count >= 1);
    if (rc == NX_EPROTO) check(b.count == 1 && !b.is_batch && b.msgs[0].kind == NX_RPC_INVALID);
    if (b.is_batch) check(opts != NULL && opts->allow_batch && b.count <= opts->max_batch);
    for (uint32_t i = 0; i < b.count; i++) {
        if (b.msgs[i].kind == NX_RPC_INVALID)
            check_rejection(&b.msgs[i]);
        else
            check_message(&b.msgs[i]);
    }
    nx_rpc_batch_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const nx_rpc_decode_opts_t batches = {
        .allow_batch = true, .max_batch = 8, .max_depth = 16};
    run(data, size, NULL);
    run(data, size, &batches);
    return 0;
}

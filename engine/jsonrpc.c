/* JSON-RPC 2.0 codec (see jsonrpc.h). jansson parses; this file classifies and validates each
 * message strictly, bounds nesting with a walk limited by max_depth (jansson itself only stops
 * at 2048), and builds one-line messages for the newline-delimited stdio transport. */
#include "jsonrpc.h"
#include "json_write.h"

#include "nexus/errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compact output escapes control characters inside strings and puts no whitespace between
 * tokens, so a serialized message never contains a raw '\n'. */
#define ENCODE_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

/* Duplicate keys are refused: a gateway that read the last "method" while the backend read the
 * first would authorize one call and forward another. */
#define DECODE_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)

static const char *type_name(const json_t *v) {
    if (v == NULL) return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a fractional number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Copies <n> bytes of <src> into <dst> as printable ASCII ('?' for anything else), cut with
 * "..." when longer than <cap> allows, so peer bytes are safe in logs and in json_string. */
static void sanitize(char *dst, size_t cap, const char *src, size_t n) {
    size_t i = 0, keep = n <= cap - 1 ? n : (cap > 4 ? cap - 4 : 0);
    for (; i < keep; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (keep < n && cap > 4) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
}

__attribute__((format(printf, 3, 4))) static void set_error(nx_rpc_error_t *e, int code,
                                                            const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e->code = code;
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static bool valid_id(const json_t *id) {
    return json_is_string(id) || json_is_integer(id);
}

/* True when <v> nests more than <limit> levels of objects and arrays, <v> being level 1. The
 * recursion stops at <limit>, so the stack stays bounded by it. */
static bool too_deep(json_t *v, uint32_t limit) {
    if (json_is_object(v)) {
        if (limit == 0) return true;
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child) {
            if (too_deep(child, limit - 1)) return true;
        }
    } else if (json_is_array(v)) {
        if (limit == 0) return true;
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) {
            if (too_deep(child, limit - 1)) return true;
        }
    }
    return false;
}

static void reject(nx_rpc_msg_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reject(nx_rpc_msg_t *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    m->kind = NX_RPC_INVALID;
    m->method = NULL;
    m->params = m->result = m->error = NULL;
    m->reject.code = NX_RPC_INVALID_REQUEST;
    vsnprintf(m->reject.message, sizeof(m->reject.message), fmt, ap);
    va_end(ap);
}

/* True when <v> is exactly "2.0"; otherwise rejects <m> saying what it was. */
static bool check_version(nx_rpc_msg_t *m, const json_t *v) {
    if (json_is_string(v) && json_string_length(v) == 3 &&
        memcmp(json_string_value(v), "2.0", 3) == 0)
        return true;
    if (!json_is_string(v)) {
        reject(m, "\"jsonrpc\" must be \"2.0\", but it is %s", type_name(v));
    } else {
        char got[40];
        sanitize(got, sizeof(got), json_string_value(v), json_string_length(v));
        reject(m, "\"jsonrpc\" must be \"2.0\", but it is \"%s\"", got);
    }
    return false;
}

/* Classifies m->root, which the message owns; leaves kind NX_RPC_INVALID with m->reject set
 * when it breaks JSON-RPC 2.0, and m->id set whenever the id could be read. */
static void classify(nx_rpc_msg_t *m, uint32_t max_depth) {
    json_t *v = m->root;
    m->kind = NX_RPC_INVALID;
    if (!json_is_object(v)) {
        reject(m, "a message must be an object, but it is %s", type_name(v));
        return;
    }
    json_t *id = json_object_get(v, "id");
    if (valid_id(id)) m->id = id;
    if (too_deep(v, max_depth)) {
        reject(m, "the message nests deeper than %u levels", max_depth);
        return;
    }
    if (!check_version(m, json_object_get(v, "jsonrpc"))) return;

    json_t *method = json_object_get(v, "method");
    json_t *result = json_object_get(v, "result");
    json_t *error = json_object_get(v, "error");
    if (method != NULL) {
        json_t *params = json_object_get(v, "params");
        if (!json_is_string(method))
            reject(m, "\"method\" must be a string, but it is %s", type_name(method));
        else if (result != NULL || error != NULL)
            reject(m, "a request must not have \"%s\"", result != NULL ? "result" : "error");
        else if (params != NULL && !json_is_object(params) && !json_is_array(params))
            reject(m, "\"params\" must be an object or an array, but it is %s", type_name(params));
        else if (id != NULL && !valid_id(id))
            reject(m, "\"id\" must be a string or an integer, but it is %s", type_name(id));
        else {
            m->kind = id != NULL ? NX_RPC_REQUEST : NX_RPC_NOTIFICATION;
            m->method = json_string_value(method);
            m->params = params;
        }
        return;
    }
    if (result != NULL && error != NULL) {
        reject(m, "a response must have exactly one of \"result\" and \"error\", but it has both");
        return;
    }
    if (result == NULL && error == NULL) {
        reject(m, "a message must have \"method\", \"result\" or \"error\", but it has none");
        return;
    }
    if (id == NULL) {
        reject(m, "a response must have an \"id\", but it is missing");
        return;
    }
    if (result != NULL) {
        if (!valid_id(id)) {
            reject(m, "\"id\" must be a string or an integer, but it is %s", type_name(id));
            return;
        }
        m->kind = NX_RPC_RESPONSE;
        m->result = result;
        return;
    }
    if (!valid_id(id) && !json_is_null(id)) {
        reject(m, "\"id\" must be a string, an integer or null, but it is %s", type_name(id));
        return;
    }
    if (!json_is_object(error)) {
        reject(m, "\"error\" must be an object, but it is %s", type_name(error));
        return;
    }
    json_t *code = json_object_get(error, "code");
    json_t *message = json_object_get(error, "message");
    if (!json_is_integer(code)) {
        reject(m, "\"error.code\" must be an integer, but it is %s", type_name(code));
        return;
    }
    if (!json_is_string(message)) {
        reject(m, "\"error.message\" must be a string, but it is %s", type_name(message));
        return;
    }
    m->kind = NX_RPC_ERROR_RESPONSE;
    m->error = error;
    m->error_code = json_integer_value(code);
    m->error_message = json_string_value(message);
}

/* Makes <out> a single whole-body error; returns NX_EPROTO, or -ENOMEM. */
static int reject_body(nx_rpc_batch_t *out, nx_rpc_msg_t **slot) {
    out->msgs = calloc(1, sizeof(nx_rpc_msg_t));
    if (out->msgs == NULL) return -ENOMEM;
    out->count = 1;
    *slot = &out->msgs[0];
    return NX_EPROTO;
}

int nx_rpc_decode(const char *buf, size_t len, const nx_rpc_decode_opts_t *opts,
                  nx_rpc_batch_t *out) {
    static const nx_rpc_decode_opts_t defaults = {0};
    if (opts == NULL) opts = &defaults;
    uint32_t max_depth = opts->max_depth ? opts->max_depth : NX_RPC_DEFAULT_MAX_DEPTH;
    uint32_t max_batch = opts->max_batch ? opts->max_batch : NX_RPC_DEFAULT_MAX_BATCH;
    *out = (nx_rpc_batch_t){0};

    json_error_t jerr;
    json_t *root = json_loadb(buf != NULL ? buf : "", len, DECODE_FLAGS, &jerr);
    nx_rpc_msg_t *m = NULL;
    int rc;
    if (root == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) return -ENOMEM;
        if ((rc = reject_body(out, &m)) != NX_EPROTO) return rc;
        if (json_error_code(&jerr) == json_error_stack_overflow) {
            reject(m, "the message nests deeper than %u levels", max_depth);
        } else {
            char text[JSON_ERROR_TEXT_LENGTH];
            sanitize(text, sizeof(text), jerr.text, strlen(jerr.text));
            set_error(&m->reject, NX_RPC_PARSE_ERROR,
                      "Parse error at line %d, column %d (byte %d): %s", jerr.line, jerr.column,
                      jerr.position, text);
        }
        return NX_EPROTO;
    }

    if (!json_is_array(root)) {
        out->msgs = calloc(1, sizeof(nx_rpc_msg_t));
        if (out->msgs == NULL) {
            json_decref(root);
            return -ENOMEM;
        }
        out->count = 1;
        out->msgs[0].root = root;
        classify(&out->msgs[0], max_depth);
        return 0;
    }

    size_t n = json_array_size(root);
    if (!opts->allow_batch || n == 0 || n > max_batch) {
        json_decref(root);
        if ((rc = reject_body(out, &m)) != NX_EPROTO) return rc;
        if (!opts->allow_batch)
            reject(m, "a batch (JSON array) is not allowed in this protocol revision");
        else if (n == 0)
            reject(m, "a batch must not be empty");
        else
            reject(m, "a batch of %zu messages is more than the limit of %u", n, max_batch);
        return NX_EPROTO;
    }
    out->msgs = calloc(n, sizeof(nx_rpc_msg_t));
    if (out->msgs == NULL) {
        json_decref(root);
        return -ENOMEM;
    }
    out->count = (uint32_t)n;
    out->is_batch = true;
    for (size_t i = 0; i < n; i++) {
        /* The array counts as no level: a message nests the same alone or in a batch. */
        out->msgs[i].root = json_incref(json_array_get(root, i));
        classify(&out->msgs[i], max_depth);
    }
    json_decref(root);
    return 0;
}

void nx_rpc_batch_dispose(nx_rpc_batch_t *b) {
    if (b == NULL) return;
    for (uint32_t i = 0; i < b->count; i++)
        json_decref(b->msgs[i].root);
    free(b->msgs);
    *b = (nx_rpc_batch_t){0};
}

const char *nx_rpc_kind_name(nx_rpc_kind_t kind) {
    switch (kind) {
    case NX_RPC_INVALID:
        return "invalid";
    case NX_RPC_REQUEST:
        return "request";
    case NX_RPC_NOTIFICATION:
        return "notification";
    case NX_RPC_RESPONSE:
        return "response";
    case NX_RPC_ERROR_RESPONSE:
        return "error";
    }
    return "unknown";
}

/* A fresh {"jsonrpc":"2.0"} with "id" set from <id> (borrowed) when <with_id>; NULL = null. */
static json_t *envelope(json_t *id, bool with_id) {
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "jsonrpc", json_string("2.0")) < 0) goto fail;
    if (with_id && json_object_set_new(o, "id", id != NULL ? json_incref(id) : json_null()) < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

json_t *nx_rpc_result_new(json_t *id, json_t *result) {
    if (result == NULL) result = json_object();
    json_t *o = valid_id(id) && result != NULL ? envelope(id, true) : NULL;
    if (o == NULL || json_object_set_new(o, "result", result) < 0) {
        if (o == NULL) json_decref(result); /* set_new releases it on failure */
        json_decref(o);
        return NULL;
    }
    return o;
}

/* json_string of <s>, with anything that is not valid UTF-8 turned into '?' rather than lost. */
static json_t *string_or_sanitized(const char *s) {
    json_t *j = json_string(s != NULL ? s : "");
    if (j != NULL || s == NULL) return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (copy == NULL) return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    copy[n] = '\0';
    j = json_string(copy);
    free(copy);
    return j;
}

json_t *nx_rpc_error_new(json_t *id, int code, const char *message, json_t *data) {
    json_t *o = NULL, *err = NULL;
    if (id != NULL && !valid_id(id) && !json_is_null(id)) goto fail;
    if ((o = envelope(id, true)) == NULL || (err = json_object()) == NULL) goto fail;
    if (json_object_set_new(err, "code", json_integer(code)) < 0 ||
        json_object_set_new(err, "message", string_or_sanitized(message)) < 0)
        goto fail;
    if (data != NULL) {
        json_t *d = data;
        data = NULL; /* set_new consumes it, success or not */
        if (json_object_set_new(err, "data", d) < 0) goto fail;
    }
    json_t *e = err;
    err = NULL;
    if (json_object_set_new(o, "error", e) < 0) goto fail;
    return o;
fail:
    json_decref(data);
    json_decref(err);
    json_decref(o);
    return NULL;
}

json_t *nx_rpc_reject_new(const nx_rpc_msg_t *m) {
    int code = m->reject.code ? m->reject.code : NX_RPC_INVALID_REQUEST;
    return nx_rpc_error_new(m->id, code, m->reject.message, NULL);
}

/* The request/notification body; <params> stolen. */
static json_t *call_new(json_t *id, bool with_id, const char *method, json_t *params) {
    json_t *o = NULL;
    if (method == NULL || (with_id && !valid_id(id))) goto fail;
    if (params != NULL && !json_is_object(params) && !json_is_array(params)) goto fail;
    if ((o = envelope(id, with_id)) == NULL) goto fail;
    if (json_object_set_new(o, "method", json_string(method)) < 0) goto fail;
    if (params != NULL) {
        json_t *p = params;
        params = NULL;
        if (json_object_set_new(o, "params", p) < 0) goto fail;
    }
    return o;
fail:
    json_decref(params);
    json_decref(o);
    return NULL;
}

json_t *nx_rpc_request_new(json_t *id, const char *method, json_t *params) {
    return call_new(id, true, method, params);
}

json_t *nx_rpc_notification_new(const char *method, json_t *params) {
    return call_new(NULL, false, method, params);
}

char *nx_rpc_encode(const json_t *msg, size_t *len) {
    return nx_json_write(msg, 17, len);
}

size_t nx_rpc_encode_into(const json_t *msg, char *buf, size_t cap) {
    return json_dumpb(msg, buf, cap, ENCODE_FLAGS);
}

static bool has_type(const json_t *v, nx_rpc_type_t type) {
    switch (type) {
    case NX_RPC_T_ANY:
        return true;
    case NX_RPC_T_STRING:
        return json_is_string(v);
    case NX_RPC_T_INTEGER:
        return json_is_integer(v);
    case NX_RPC_T_NUMBER:
        return json_is_number(v);
    case NX_RPC_T_BOOLEAN:
        return json_is_boolean(v);
    case NX_RPC_T_OBJECT:
        return json_is_object(v);
    case NX_RPC_T_ARRAY:
        return json_is_array(v);
    }
    return false;
}

static const char *expected_name(nx_rpc_type_t type) {
    switch (type) {
    case NX_RPC_T_ANY:
        return "present";
    case NX_RPC_T_STRING:
        return "a string";
    case NX_RPC_T_INTEGER:
        return "an integer";
    case NX_RPC_T_NUMBER:
        return "a number";
    case NX_RPC_T_BOOLEAN:
        return "a boolean";
    case NX_RPC_T_OBJECT:
        return "an object";
    case NX_RPC_T_ARRAY:
        return "an array";
    }
    return "valid";
}

int nx_rpc_param(const json_t *params, const char *name, nx_rpc_type_t type, bool required,
                 json_t **out, nx_rpc_error_t *err) {
    if (params != NULL && !json_is_object(params)) {
        set_error(err, NX_RPC_INVALID_PARAMS, "params must be an object, but it is %s",
                  type_name(params));
        return NX_EPROTO;
    }
    json_t *v = params != NULL ? json_object_get(params, name) : NULL;
    if (v == NULL && !required) return 0;
    if (v == NULL || !has_type(v, type)) {
        set_error(err, NX_RPC_INVALID_PARAMS, "params.%s must be %s, but it is %s", name,
                  expected_name(type), type_name(v));
        return NX_EPROTO;
    }
    *out = v;
    return 1;
}

int nx_rpc_param_string(const json_t *params, const char *name, bool required, const char **out,
                        nx_rpc_error_t *err) {
    json_t *v;
    int rc = nx_rpc_param(params, name, NX_RPC_T_STRING, required, &v, err);
    if (rc == 1) *out = json_string_value(v);
    return rc;
}

int nx_rpc_param_int(const json_t *params, const char *name, bool required, json_int_t *out,
                     nx_rpc_error_t *err) {
    json_t *v;
    int rc = nx_rpc_param(params, name, NX_RPC_T_INTEGER, required, &v, err);
    if (rc == 1) *out = json_integer_value(v);
    return rc;
}

int nx_rpc_param_bool(const json_t *params, const char *name, bool required, bool *out,
                      nx_rpc_error_t *err) {
    json_t *v;
    int rc = nx_rpc_param(params, name, NX_RPC_T_BOOLEAN, required, &v, err);
    if (rc == 1) *out = json_is_true(v);
    return rc;
}

int nx_rpc_progress_token(const json_t *params, json_t **out, nx_rpc_error_t *err) {
    json_t *meta = NULL;
    int rc = nx_rpc_param(params, "_meta", NX_RPC_T_OBJECT, false, &meta, err);
    if (rc <= 0) return rc;
    json_t *token = json_object_get(meta, "progressToken");
    if (token == NULL) return 0;
    if (!valid_id(token)) {
        set_error(err, NX_RPC_INVALID_PARAMS,
                  "params._meta.progressToken must be a string or an integer, but it is %s",
                  type_name(token));
        return NX_EPROTO;
    }
    *out = token;
    return 1;
}

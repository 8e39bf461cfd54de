/* The fixtures of the official MCP conformance suite (tests/conformance/FIXTURES.md) served by
 * nexus through its embedding API: the tools, resources, prompts and completions the scenarios
 * call, for the legacy session wire and for the stateless 2026-07-28 one, where a tool that needs
 * the client's input answers input_required (MRTR) with an HMAC-sealed requestState, and where
 * the tools of the tasks extension run as tasks when they answer later. */
#include "nexus/app.h"

#include "engine.h"
#include "jsonrpc.h"
#include "nexus/errors.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A 1x1 PNG and a minimal WAV; the checks only want valid base64 and the right mimeType. */
static const char IMG[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQ"
                          "IAX8jx0gAAAABJRU5ErkJggg==";
static const char WAV[] = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

static const char NO_ARGS[] = "{\"type\":\"object\",\"properties\":{}}";
static const char LOGGER[] = "conformance-test-server";

/* Key of the requestState HMAC: random per process, so a state only comes back intact from
 * the client it was given to, and never from a previous run. Written once before serving. */
static unsigned char state_key[32];

/* ---- answering ---- */

/* Answers <call> with one text item made from <fmt>; isError when <is_error>. */
static void return_textf(nx_mcp_call_t *call, bool is_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void return_textf(nx_mcp_call_t *call, bool is_error, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    nx_mcp_call_return_text(call, n < 0 ? "out of memory" : text, n < 0 || is_error);
    if (n >= 0) free(text);
}

/* Compact JSON of <j> (or {} when NULL), as JavaScript's JSON.stringify writes these values;
 * free() it. */
static char *compact(const json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return s ? s : strdup("{}");
}

static void invalid_params(nx_mcp_call_t *call, const char *message) {
    nx_mcp_call_error(call, NX_RPC_INVALID_PARAMS, message, NULL);
}

/* Fails <call> with -32021 naming the client capability <cap> it needs. */
static void missing_capability(nx_mcp_call_t *call, const char *cap) {
    char m[128];
    snprintf(m, sizeof(m), "Missing required client capability: %s", cap);
    nx_mcp_call_error(call, NX_RPC_MISSING_CAPABILITY, m,
                      json_pack("{s:{s:{}}}", "requiredCapabilities", cap));
}

/* The client capability a server-to-client request <method> needs. */
static const char *capability_of(const char *method) {
    if (strcmp(method, "sampling/createMessage") == 0) return "sampling";
    if (strcmp(method, "roots/list") == 0) return "roots";
    return "elicitation";
}

static bool client_can(const nx_mcp_call_t *call, const char *cap) {
    return json_is_object(json_object_get(nx_mcp_call_client_capabilities(call), cap));
}

/* A call that answers later but keeps no state of its own still registers a hook: with one,
 * the core frees a cancelled call at once instead of when its client request is answered. */
static void on_cancel_nothing(nx_mcp_call_t *call, void *arg) {}

/* ---- asking the client: a request in a session, input_required without one ---- */

/* True when <a> has the shape of a result of <method>: enough to read it safely. */
static bool valid_answer(const char *method, const json_t *a) {
    if (!json_is_object(a)) return false;
    if (strcmp(method, "elicitation/create") == 0) {
        const char *action = json_string_value(json_object_get(a, "action"));
        const json_t *content = json_object_get(a, "content");
        return action != NULL &&
               (strcmp(action, "accept") == 0 || strcmp(action, "decline") == 0 ||
                strcmp(action, "cancel") == 0) &&
               (content == NULL || json_is_object(content));
    }
    if (strcmp(method, "sampling/createMessage") == 0) {
        const json_t *content = json_object_get(a, "content");
        return json_is_object(content) || json_is_array(content);
    }
    return json_is_array(json_object_get(a, "roots"));
}

/* Finds the answer to input request <key> of <method> in <responses> (inputResponses, may be
 * NULL): 1 with it in <out>, 0 when absent (ask again), -1 after failing <call> with -32602
 * because it is malformed. Answers under keys we did not ask for are ignored. */
static int take_answer(nx_mcp_call_t *call, const json_t *responses, const char *key,
                       const char *method, const json_t **out) {
    const json_t *a = json_object_get(responses, key);
    if (a == NULL) return 0;
    if (!valid_answer(method, a)) {
        char m[200];
        snprintf(m, sizeof(m), "params.inputResponses.%.64s is not a result of %s", key, method);
        invalid_params(call, m);
        return -1;
    }
    *out = a;
    return 1;
}

/* Reads params.inputResponses: true with it in <out> (NULL when absent), false after failing
 * <call> because it is not an object (null included: a protocol error, not a missing
 * answer). */
static bool read_responses(nx_mcp_call_t *call, const json_t **out) {
    const json_t *r = json_object_get(nx_mcp_call_params(call), "inputResponses");
    if (r != NULL && !json_is_object(r)) {
        invalid_params(call, "params.inputResponses must be an object");
        return false;
    }
    *out = r;
    return true;
}

/* {"method": <method>, "params": <params> (stolen)}: one entry of inputRequests. */
static json_t *input_request(const char *method, json_t *params) {
    return json_pack("{s:s, s:o}", "method", method, "params", params);
}

/* Answers <call> with an InputRequiredResult of <requests> (stolen) and <state> (may be
 * NULL). */
static void return_input_required(nx_mcp_call_t *call, json_t *requests, const char *state) {
    json_t *r = json_pack("{s:s, s:o}", "resultType", "input_required", "inputRequests", requests);
    if (state != NULL) json_object_set_new(r, "requestState", json_string(state));
    nx_mcp_call_return(call, r);
}

/* Asks the client <method> with <params> (stolen) and goes on in <then> with its answer. In a
 * session that is a server-to-client request; statelessly the call answers input_required
 * under <key>, and the client's retry brings the answer in inputResponses.<key>. <then> gets
 * exactly one of result and error, and must answer the call. */
static void ask(nx_mcp_call_t *call, const char *key, const char *method, json_t *params,
                nx_mcp_response_fn then) {
    if (!nx_mcp_call_is_stateless(call)) {
        nx_mcp_call_on_cancel(call, on_cancel_nothing, NULL);
        nx_mcp_call_request(call, method, params, then, NULL);
        return;
    }
    const json_t *responses, *answer = NULL;
    int rc =
        read_responses(call, &responses) ? take_answer(call, responses, key, method, &answer) : -1;
    if (rc != 0) {
        json_decref(params);
        if (rc > 0) then(call, answer, NULL, NULL);
        return;
    }
    /* Never ask what the client cannot answer. */
    if (!client_can(call, capability_of(method))) {
        json_decref(params);
        missing_capability(call, capability_of(method));
        return;
    }
    return_input_required(call, json_pack("{s:o}", key, input_request(method, params)), NULL);
}

/* The params of elicitation/create: <message> and the requestedSchema in JSON text <schema>. */
static json_t *elicit_params(const char *message, const char *schema) {
    return json_pack("{s:s, s:o}", "message", message, "requestedSchema",
                     json_loads(schema, 0, NULL));
}

/* The params of sampling/createMessage: one user message <text>. */
static json_t *sampling_params(const char *text, int max_tokens) {
    return json_pack("{s:[{s:s, s:{s:s, s:s}}], s:i}", "messages", "role", "user", "content",
                     "type", "text", "text", text, "maxTokens", max_tokens);
}

/* The text a sampling result carries: content.text, or the first text item of a content
 * array. */
static const char *sampled_text(const json_t *result) {
    const json_t *c = json_object_get(result, "content");
    if (json_is_array(c)) {
        size_t i;
        const json_t *item;
        json_array_foreach(c, i, item) {
            if (json_is_string(json_object_get(item, "text")))
                return json_string_value(json_object_get(item, "text"));
        }
        return "";
    }
    const char *t = json_string_value(json_object_get(c, "text"));
    return t ? t : "";
}

static const char *error_message(const json_t *error) {
    const char *m = json_string_value(json_object_get(error, "message"));
    return m ? m : "unknown error";
}

/* ---- requestState: sealed with an HMAC, since it comes back from the client ---- */

static void hex_encode(const unsigned char *p, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Hex of the HMAC-SHA256 of <p>/<n> into <out> (65 bytes). */
static void state_mac(const unsigned char *p, size_t n, char *out) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), state_key, sizeof(state_key), p, n, md, &md_len);
    hex_encode(md, md_len, out);
}

/* Seals <payload> (stolen; gains "tool": <tool>, so that a state only opens for the tool that
 * issued it) as "<hex of compact JSON>.<hex of its HMAC>"; free() it. NULL on ENOMEM. */
static char *state_seal(json_t *payload, const char *tool) {
    json_object_set_new(payload, "tool", json_string(tool));
    char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(payload);
    if (text == NULL) return NULL;
    size_t n = strlen(text);
    char *state = malloc(2 * n + 1 + 64 + 1);
    if (state != NULL) {
        hex_encode((const unsigned char *)text, n, state);
        state[2 * n] = '.';
        state_mac((const unsigned char *)text, n, state + 2 * n + 1);
    }
    free(text);
    return state;
}

/* Opens a state of state_seal: its payload (a new reference), or NULL when it was altered,
 * is malformed or belongs to another tool. */
static json_t *state_open(const char *state, const char *tool) {
    const char *dot = strchr(state, '.');
    if (dot == NULL || (dot - state) % 2 != 0 || strlen(dot + 1) != 64) return NULL;
    size_t n = (size_t)(dot - state) / 2;
    unsigned char *text = malloc(n + 1);
    if (text == NULL) return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(state[2 * i]), lo = hex_value(state[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(text);
            return NULL;
        }
        text[i] = (unsigned char)(hi << 4 | lo);
    }
    text[n] = '\0';
    char mac[65];
    state_mac(text, n, mac);
    json_t *payload = NULL;
    if (CRYPTO_memcmp(mac, dot + 1, 64) == 0)
        payload = json_loadb((const char *)text, n, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    const char *owner = json_string_value(json_object_get(payload, "tool"));
    if (owner == NULL || strcmp(owner, tool) != 0) {
        json_decref(payload);
        return NULL;
    }
    return payload;
}

/* ---- tools answered at once ---- */

static void tool_simple_text(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return_text(call, "This is a simple text response for testing.", false);
}

static void tool_image_content(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "image", "data",
                                       IMG, "mimeType", "image/png"));
}

static void tool_audio_content(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "audio", "data",
                                       WAV, "mimeType", "audio/wav"));
}

static void tool_embedded_resource(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(call,
                       json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}]}", "content", "type", "resource",
                                 "resource", "uri", "test://embedded-resource", "mimeType",
                                 "text/plain", "text", "This is an embedded resource content."));
}

static void tool_multiple_content_types(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(
        call, json_pack("{s:[{s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:{s:s, s:s, s:s}}]}", "content",
                        "type", "text", "text", "Multiple content types test:", "type", "image",
                        "data", IMG, "mimeType", "image/png", "type", "resource", "resource", "uri",
                        "test://mixed-content-resource", "mimeType", "application/json", "text",
                        "{\"test\":\"data\",\"value\":123}"));
}

static void tool_error_handling(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return_text(call, "This tool intentionally returns an error for testing", true);
}

static void tool_json_schema_2020_12(nx_mcp_call_t *call, json_t *args, void *data) {
    char *text = compact(args);
    return_textf(call, false, "JSON Schema 2020-12 tool called with: %s", text);
    free(text);
}

static void tool_missing_capability(nx_mcp_call_t *call, json_t *args, void *data) {
    if (!client_can(call, "sampling")) {
        missing_capability(call, "sampling");
        return;
    }
    nx_mcp_call_return_text(call, "Success", false);
}

static void tool_streaming_elicitation(nx_mcp_call_t *call, json_t *args, void *data) {
    /* Only related notifications may precede the answer on its stream: never a request. */
    nx_mcp_call_progress(call, 1, 1, "Streaming");
    nx_mcp_call_return_text(call, "Streaming complete", false);
}

static void tool_logging_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    /* The core sends it only when the client asked for logs (a level set, or the request's
     * logLevel on the stateless wire). */
    nx_mcp_call_log(call, NX_MCP_LOG_INFO, LOGGER, json_string("test_logging_tool was called"));
    nx_mcp_call_return_text(call, "Logging evaluated", false);
}

static void tool_trigger_tool_change(nx_mcp_call_t *call, json_t *args, void *data) {
    size_t n = nx_mcp_broadcast("notifications/tools/list_changed", NULL);
    return_textf(call, false, "Sent notifications/tools/list_changed to %zu client(s)", n);
}

static void tool_trigger_prompt_change(nx_mcp_call_t *call, json_t *args, void *data) {
    size_t n = nx_mcp_broadcast("notifications/prompts/list_changed", NULL);
    return_textf(call, false, "Sent notifications/prompts/list_changed to %zu client(s)", n);
}

static void tool_custom_header(nx_mcp_call_t *call, json_t *args, void *data) {
    return_textf(call, false, "region=%s", json_string_value(json_object_get(args, "region")));
}

/* ---- tools that answer over a few timer ticks ---- */

typedef struct stepper stepper_t;
/* Runs step <st->step> (0, 1, ...); returns true to run the next one <st->interval_ms> later,
 * or false once it has answered the call. */
typedef bool (*step_fn)(stepper_t *st);

/* One such call in progress; owned by its timer until the call is answered or cancelled. */
struct stepper {
    nx_timer_t timer;
    nx_mcp_call_t *call;
    step_fn step_fn;
    unsigned step;
    uint64_t interval_ms;
    char *text; /* what a step wants to keep for the answer; may be NULL */
};

static void stepper_free(stepper_t *st) {
    free(st->text);
    free(st);
}

static void on_step_timer(nx_timer_t *t) {
    stepper_t *st = nx_container_of(t, stepper_t, timer);
    st->step++;
    if (!st->step_fn(st)) {
        stepper_free(st);
        return;
    }
    nx_shard_timer_start(nx_engine_current_shard()->shard, &st->timer, st->interval_ms);
}

static void on_step_cancelled(nx_mcp_call_t *call, void *arg) {
    stepper_t *st = arg;
    nx_timer_stop(&st->timer);
    stepper_free(st);
}

/* Runs step 0 of <fn> on <call> now and the next ones <interval_ms> apart on this shard's
 * timer wheel; st->text takes <text> (stolen, may be NULL). */
static void steps_start(nx_mcp_call_t *call, step_fn fn, uint64_t interval_ms, char *text) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    stepper_t *st = es ? calloc(1, sizeof(*st)) : NULL;
    if (st == NULL) {
        free(text);
        nx_mcp_call_return_text(call, es ? "out of memory" : "no timers on this thread", true);
        return;
    }
    st->call = call;
    st->step_fn = fn;
    st->interval_ms = interval_ms;
    st->text = text;
    nx_timer_init(&st->timer, on_step_timer);
    if (!fn(st)) {
        stepper_free(st);
        return;
    }
    nx_mcp_call_on_cancel(call, on_step_cancelled, st);
    nx_shard_timer_start(es->shard, &st->timer, interval_ms);
}

static bool step_logging(stepper_t *st) {
    static const char *const lines[] = {"Tool execution started", "Tool processing data",
                                        "Tool execution completed"};
    nx_mcp_call_log(st->call, NX_MCP_LOG_INFO, NULL, json_string(lines[st->step]));
    if (st->step < 2) return true;
    nx_mcp_call_return_text(st->call, "Tool with logging executed successfully", false);
    return false;
}

static void tool_with_logging(nx_mcp_call_t *call, json_t *args, void *data) {
    steps_start(call, step_logging, 50, NULL);
}

static bool step_progress(stepper_t *st) {
    char msg[64];
    snprintf(msg, sizeof(msg), "Completed step %u of 100", st->step * 50);
    nx_mcp_call_progress(st->call, st->step * 50.0, 100, msg);
    if (st->step < 2) return true;
    nx_mcp_call_return_text(st->call, st->text ? st->text : "out of memory", st->text == NULL);
    return false;
}

static void tool_with_progress(nx_mcp_call_t *call, json_t *args, void *data) {
    /* The answer is String(token): a string as it is, a number as JSON writes it. The core
     * echoes the token itself, with its type, in each notification. */
    const json_t *meta = json_object_get(nx_mcp_call_params(call), "_meta");
    const json_t *token = json_object_get(meta, "progressToken");
    char *text = json_is_string(token) ? strdup(json_string_value(token))
                 : token != NULL       ? json_dumps(token, JSON_ENCODE_ANY | JSON_COMPACT)
                                       : strdup("no progressToken");
    steps_start(call, step_progress, 50, text);
}

static bool step_reconnection(stepper_t *st) {
    if (st->step == 0) {
        /* SEP-1699: end the POST stream mid-call; the answer waits for the client's GET with
         * Last-Event-ID. */
        nx_mcp_call_close_stream(st->call, 500);
        return true;
    }
    nx_mcp_call_return_text(st->call,
                            "Reconnection test completed successfully. If you received this, the "
                            "client properly reconnected after stream closure.",
                            false);
    return false;
}

static void tool_reconnection(nx_mcp_call_t *call, json_t *args, void *data) {
    steps_start(call, step_reconnection, 100, NULL);
}

/* ---- tools that ask the client (sampling, elicitation, roots) ---- */

static void on_sampling(nx_mcp_call_t *call, const json_t *result, const json_t *error, void *arg) {
    if (error != NULL)
        return_textf(call, false, "Sampling not supported or error: %s", error_message(error));
    else
        return_textf(call, false, "LLM response: %s", sampled_text(result));
}

static void tool_sampling(nx_mcp_call_t *call, json_t *args, void *data) {
    const char *prompt = json_string_value(json_object_get(args, "prompt"));
    ask(call, "sampling", "sampling/createMessage", sampling_params(prompt, 100), on_sampling);
}

/* Answers an elicitation with "<prefix>: action=<action>, content=<content as JSON>". */
static void return_elicited(nx_mcp_call_t *call, const char *prefix, const json_t *result,
                            const json_t *error) {
    if (error != NULL) {
        return_textf(call, false, "Elicitation not supported or error: %s", error_message(error));
        return;
    }
    char *content = compact(json_object_get(result, "content"));
    return_textf(call, false, "%s: action=%s, content=%s", prefix,
                 json_string_value(json_object_get(result, "action")), content);
    free(content);
}

static void on_elicitation(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                           void *arg) {
    return_elicited(call, "User response", result, error);
}

static void tool_elicitation(nx_mcp_call_t *call, json_t *args, void *data) {
    const char *message = json_string_value(json_object_get(args, "message"));
    ask(call, "user_info", "elicitation/create",
        elicit_params(message,
                      "{\"type\":\"object\",\"properties\":{"
                      "\"username\":{\"type\":\"string\",\"description\":\"Your username\"},"
                      "\"email\":{\"type\":\"string\",\"description\":\"Your email "
                      "address\"}},\"required\":[\"username\",\"email\"]}"),
        on_elicitation);
}

static void on_elicitation_completed(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                                     void *arg) {
    return_elicited(call, "Elicitation completed", result, error);
}

static void tool_elicitation_sep1034_defaults(nx_mcp_call_t *call, json_t *args, void *data) {
    ask(call, "form", "elicitation/create",
        elicit_params(
            "Please review and update the form fields with defaults",
            "{\"type\":\"object\",\"properties\":{"
            "\"name\":{\"type\":\"string\",\"description\":\"User name\",\"default\":\"John Doe\"},"
            "\"age\":{\"type\":\"integer\",\"description\":\"User age\",\"default\":30},"
            "\"score\":{\"type\":\"number\",\"description\":\"User score\",\"default\":95.5},"
            "\"status\":{\"type\":\"string\",\"description\":\"User status\","
            "\"enum\":[\"active\",\"inactive\",\"pending\"],\"default\":\"active\"},"
            "\"verified\":{\"type\":\"boolean\",\"description\":\"Verification status\","
            "\"default\":true}},\"required\":[]}"),
        on_elicitation_completed);
}

static void tool_elicitation_sep1330_enums(nx_mcp_call_t *call, json_t *args, void *data) {
    ask(call, "options", "elicitation/create",
        elicit_params(
            "Please select options from the enum fields",
            "{\"type\":\"object\",\"properties\":{"
            "\"untitledSingle\":{\"type\":\"string\",\"description\":\"Select one option\","
            "\"enum\":[\"option1\",\"option2\",\"option3\"]},"
            "\"titledSingle\":{\"type\":\"string\",\"description\":\"Select one option with "
            "titles\",\"oneOf\":[{\"const\":\"value1\",\"title\":\"First Option\"},"
            "{\"const\":\"value2\",\"title\":\"Second Option\"},"
            "{\"const\":\"value3\",\"title\":\"Third Option\"}]},"
            "\"legacyEnum\":{\"type\":\"string\",\"description\":\"Select one option (legacy)\","
            "\"enum\":[\"opt1\",\"opt2\",\"opt3\"],"
            "\"enumNames\":[\"Option One\",\"Option Two\",\"Option Three\"]},"
            "\"untitledMulti\":{\"type\":\"array\",\"description\":\"Select multiple options\","
            "\"minItems\":1,\"maxItems\":3,"
            "\"items\":{\"type\":\"string\",\"enum\":[\"option1\",\"option2\",\"option3\"]}},"
            "\"titledMulti\":{\"type\":\"array\",\"description\":\"Select multiple options with "
            "titles\",\"minItems\":1,\"maxItems\":3,\"items\":{\"anyOf\":["
            "{\"const\":\"value1\",\"title\":\"First Choice\"},"
            "{\"const\":\"value2\",\"title\":\"Second Choice\"},"
            "{\"const\":\"value3\",\"title\":\"Third Choice\"}]}}},\"required\":[]}"),
        on_elicitation_completed);
}

/* ---- InputRequiredResult (MRTR, SEP-2322) fixtures ---- */

static const char NAME_SCHEMA[] = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
                                  "\"string\"}},\"required\":[\"name\"]}";
static const char OK_SCHEMA[] = "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":"
                                "\"boolean\"}},\"required\":[\"ok\"]}";

/* content.<field> of an accepted elicitation, else NULL. */
static const char *elicited(const json_t *result, const char *field) {
    const char *action = json_string_value(json_object_get(result, "action"));
    if (action == NULL || strcmp(action, "accept") != 0) return NULL;
    return json_string_value(json_object_get(json_object_get(result, "content"), field));
}

/* The single-request fixtures go through ask(), so a session client is asked directly. */
static void on_user_name(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                         void *arg) {
    if (error != NULL) {
        return_textf(call, false, "Elicitation not supported or error: %s", error_message(error));
        return;
    }
    const char *name = elicited(result, "name");
    if (name != NULL)
        return_textf(call, false, "Hello, %s!", name);
    else
        return_textf(call, false, "No name given (action=%s)",
                     json_string_value(json_object_get(result, "action")));
}

static void tool_irr_elicitation(nx_mcp_call_t *call, json_t *args, void *data) {
    ask(call, "user_name", "elicitation/create", elicit_params("What is your name?", NAME_SCHEMA),
        on_user_name);
}

static void tool_irr_sampling(nx_mcp_call_t *call, json_t *args, void *data) {
    ask(call, "capital_question", "sampling/createMessage",
        sampling_params("What is the capital of France?", 100), on_sampling);
}

static void on_roots(nx_mcp_call_t *call, const json_t *result, const json_t *error, void *arg) {
    if (error != NULL) {
        return_textf(call, false, "Roots not available: %s", error_message(error));
        return;
    }
    const json_t *roots = json_object_get(result, "roots");
    const char *first = json_string_value(json_object_get(json_array_get(roots, 0), "uri"));
    return_textf(call, false, "Found %zu root(s)%s%s", json_array_size(roots), first ? ": " : "",
                 first ? first : "");
}

static void tool_irr_list_roots(nx_mcp_call_t *call, json_t *args, void *data) {
    ask(call, "client_roots", "roots/list", json_object(), on_roots);
}

static void on_prompt_context(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                              void *arg) {
    const char *context = error ? NULL : elicited(result, "context");
    char *text = NULL;
    if (asprintf(&text, "Prompt with context: %s", context ? context : "(none given)") < 0) {
        nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user",
                                       "content", "type", "text", "text", text));
    free(text);
}

static void prompt_irr(nx_mcp_call_t *call, json_t *args, void *data) {
    ask(call, "user_context", "elicitation/create",
        elicit_params("What context should the prompt use?",
                      "{\"type\":\"object\",\"properties\":{\"context\":{\"type\":\"string\"}},"
                      "\"required\":[\"context\"]}"),
        on_prompt_context);
}

/* What a multi-request fixture reads from one round: the client's answers and the payload of
 * the requestState it echoed. */
typedef struct round {
    const json_t *responses; /* inputResponses; NULL in the first round */
    json_t *state;           /* owned; NULL when no requestState came */
    char tool[64];           /* copied: the call's own name dies with the call */
} round_t;

/* Starts a round of a fixture that only works statelessly; false after answering <call>
 * (a session, malformed inputResponses, or a requestState that fails its integrity check). */
static bool round_begin(nx_mcp_call_t *call, round_t *r) {
    memset(r, 0, sizeof(*r));
    snprintf(r->tool, sizeof(r->tool), "%s", nx_mcp_call_target(call));
    if (!nx_mcp_call_is_stateless(call)) {
        nx_mcp_call_return_text(call,
                                "This tool asks for input with an input_required result: call it "
                                "without a session (protocol 2026-07-28).",
                                true);
        return false;
    }
    if (!read_responses(call, &r->responses)) return false;
    const json_t *state = json_object_get(nx_mcp_call_params(call), "requestState");
    if (state == NULL) return true;
    if (!json_is_string(state)) {
        invalid_params(call, "params.requestState must be a string");
        return false;
    }
    r->state = state_open(json_string_value(state), r->tool);
    if (r->state == NULL) {
        invalid_params(call, "requestState integrity check failed");
        return false;
    }
    return true;
}

/* Answers input_required with <requests> (stolen) and <payload> (stolen) sealed as the
 * state. */
static void return_sealed(nx_mcp_call_t *call, const round_t *r, json_t *requests,
                          json_t *payload) {
    char *state = state_seal(payload, r->tool);
    if (state == NULL) {
        json_decref(requests);
        nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    return_input_required(call, requests, state);
    free(state);
}

static json_int_t state_step(const round_t *r) {
    return r->state ? json_integer_value(json_object_get(r->state, "step")) : 0;
}

/* request_state and tampered_state: one confirmation, taken only with the intact state that
 * asked for it. */
static void confirm_fixture(nx_mcp_call_t *call, const char *done) {
    round_t r;
    if (!round_begin(call, &r)) return;
    const json_t *answer = NULL;
    int rc = take_answer(call, r.responses, "confirm", "elicitation/create", &answer);
    if (rc > 0 && state_step(&r) == 1) {
        const json_t *ok = json_object_get(json_object_get(answer, "content"), "ok");
        return_textf(call, false, "%s (ok=%s)", done, json_is_true(ok) ? "true" : "false");
    } else if (rc >= 0) {
        if (!client_can(call, "elicitation")) {
            missing_capability(call, "elicitation");
        } else {
            json_t *req =
                input_request("elicitation/create", elicit_params("Please confirm", OK_SCHEMA));
            return_sealed(call, &r, json_pack("{s:o}", "confirm", req),
                          json_pack("{s:i}", "step", 1));
        }
    }
    json_decref(r.state);
}

static void tool_irr_request_state(nx_mcp_call_t *call, json_t *args, void *data) {
    confirm_fixture(call, "state-ok: requestState came back intact");
}

static void tool_irr_tampered_state(nx_mcp_call_t *call, json_t *args, void *data) {
    confirm_fixture(call, "requestState verified");
}

/* The three requests of multiple_inputs and capabilities: elicitation, sampling, roots. */
static const struct {
    const char *key, *method;
} kinds[] = {
    {"user_name", "elicitation/create"},
    {"greeting", "sampling/createMessage"},
    {"client_roots", "roots/list"},
};

static json_t *kind_request(size_t i) {
    if (i == 0)
        return input_request(kinds[i].method, elicit_params("What is your name?", NAME_SCHEMA));
    if (i == 1) return input_request(kinds[i].method, sampling_params("Generate a greeting", 50));
    return input_request(kinds[i].method, json_object());
}

/* Collects the answers to the kinds in <wanted> into <got>; returns the requests still
 * missing (a new object), or NULL after failing <call> on a malformed answer. */
static json_t *collect(nx_mcp_call_t *call, const json_t *responses, const bool wanted[3],
                       const json_t *got[3]) {
    json_t *missing = json_object();
    for (size_t i = 0; i < 3; i++) {
        got[i] = NULL;
        if (!wanted[i]) continue;
        int rc = take_answer(call, responses, kinds[i].key, kinds[i].method, &got[i]);
        if (rc < 0) {
            json_decref(missing);
            return NULL;
        }
        if (rc == 0) json_object_set_new(missing, kinds[i].key, kind_request(i));
    }
    return missing;
}

/* Answers with what the client said to each kind it was asked. */
static void return_answers(nx_mcp_call_t *call, const json_t *got[3]) {
    const char *name = got[0] ? elicited(got[0], "name") : NULL;
    char *text = NULL;
    int n = asprintf(&text, "Received: name=%s, greeting=%s, roots=%zu", name ? name : "-",
                     got[1] ? sampled_text(got[1]) : "-",
                     got[2] ? json_array_size(json_object_get(got[2], "roots")) : 0);
    nx_mcp_call_return_text(call, n < 0 ? "out of memory" : text, n < 0);
    if (n >= 0) free(text);
}

static void tool_irr_multiple_inputs(nx_mcp_call_t *call, json_t *args, void *data) {
    round_t r;
    if (!round_begin(call, &r)) return;
    json_t *needed = json_object();
    for (size_t i = 0; i < 3; i++) {
        const char *cap = capability_of(kinds[i].method);
        if (!client_can(call, cap)) json_object_set_new(needed, cap, json_object());
    }
    if (json_object_size(needed) > 0) {
        nx_mcp_call_error(call, NX_RPC_MISSING_CAPABILITY,
                          "Missing required client capabilities for this tool",
                          json_pack("{s:o}", "requiredCapabilities", needed));
        json_decref(r.state);
        return;
    }
    json_decref(needed);
    const bool wanted[3] = {true, true, true};
    const json_t *got[3];
    /* Without our state this is a first round, whatever answers came along. */
    json_t *missing = collect(call, r.state ? r.responses : NULL, wanted, got);
    if (missing == NULL) {
        /* answered with an error */
    } else if (json_object_size(missing) == 0) {
        json_decref(missing);
        return_answers(call, got);
    } else {
        return_sealed(call, &r, missing, json_pack("{s:i}", "step", 1));
    }
    json_decref(r.state);
}

static json_t *color_params(void) {
    return elicit_params("Step 2: What is your favorite color?",
                         "{\"type\":\"object\",\"properties\":{\"color\":{\"type\":\"string\"}},"
                         "\"required\":[\"color\"]}");
}

/* Round 1 asks step1 (name), round 2 step2 (color) under a new state that carries the name,
 * round 3 answers; a round whose answer is missing asks again under the same state. */
static void tool_irr_multi_round(nx_mcp_call_t *call, json_t *args, void *data) {
    round_t r;
    if (!round_begin(call, &r)) return;
    if (!client_can(call, "elicitation")) {
        missing_capability(call, "elicitation");
        json_decref(r.state);
        return;
    }
    const json_t *answer = NULL;
    json_int_t step = state_step(&r);
    int rc = step == 0   ? 0
             : step == 1 ? take_answer(call, r.responses, "step1", "elicitation/create", &answer)
                         : take_answer(call, r.responses, "step2", "elicitation/create", &answer);
    if (rc < 0) {
        /* answered with an error */
    } else if (step == 2 && rc > 0) {
        const char *color = elicited(answer, "color");
        return_textf(call, false, "%s's favorite color is %s",
                     json_string_value(json_object_get(r.state, "name")),
                     color ? color : "unknown");
    } else if (step == 1 && rc > 0) {
        const char *name = elicited(answer, "name");
        json_t *req = input_request("elicitation/create", color_params());
        return_sealed(call, &r, json_pack("{s:o}", "step2", req),
                      json_pack("{s:i, s:s}", "step", 2, "name", name ? name : "stranger"));
    } else if (step == 2) {
        /* step 2's answer is missing: ask it again under the same state */
        json_t *req = input_request("elicitation/create", color_params());
        return_sealed(call, &r, json_pack("{s:o}", "step2", req), json_deep_copy(r.state));
    } else {
        json_t *req = input_request("elicitation/create",
                                    elicit_params("Step 1: What is your name?", NAME_SCHEMA));
        return_sealed(call, &r, json_pack("{s:o}", "step1", req), json_pack("{s:i}", "step", 1));
    }
    json_decref(r.state);
}

static void tool_irr_capabilities(nx_mcp_call_t *call, json_t *args, void *data) {
    round_t r;
    if (!round_begin(call, &r)) return;
    bool wanted[3];
    bool any = false;
    for (size_t i = 0; i < 3; i++)
        any |= (wanted[i] = client_can(call, capability_of(kinds[i].method)));
    const json_t *got[3];
    json_t *missing = any ? collect(call, r.responses, wanted, got) : NULL;
    if (!any) {
        missing_capability(call, "sampling");
    } else if (missing == NULL) {
        /* answered with an error */
    } else if (json_object_size(missing) == 0) {
        json_decref(missing);
        return_answers(call, got);
    } else {
        /* Only what the client declared it can answer. */
        return_input_required(call, missing, NULL);
    }
    json_decref(r.state);
}

/* ---- tasks fixtures (extension io.modelcontextprotocol/tasks, FIXTURES.md §5.7) ----
 * The core makes a call a task when the client declares the extension, the tool allows tasks
 * and the handler does not answer at once; so a fixture that should become a task answers
 * from a timer, and one that should not answers inline. */

static const char CONFIRM_SCHEMA[] = "{\"type\":\"object\",\"properties\":{\"confirm\":{\"type\":"
                                     "\"boolean\"}},\"required\":[\"confirm\"]}";

/* A malloc'd text made from <fmt>, or NULL on ENOMEM. */
static char *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *textf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : text;
}

/* Step 0 of the fixtures that answer once, an interval after the call: only wait. */
static bool step_text(stepper_t *st) {
    if (st->step == 0) return true;
    nx_mcp_call_return_text(st->call, st->text ? st->text : "out of memory", st->text == NULL);
    return false;
}

static bool step_tool_error(stepper_t *st) {
    if (st->step == 0) return true;
    nx_mcp_call_return_text(st->call, st->text ? st->text : "out of memory", true);
    return false;
}

static bool step_protocol_error(stepper_t *st) {
    if (st->step == 0) return true;
    nx_mcp_call_error(st->call, NX_RPC_INTERNAL_ERROR, st->text ? st->text : "out of memory", NULL);
    return false;
}

static void tool_greet(nx_mcp_call_t *call, json_t *args, void *data) {
    return_textf(call, false, "Hello, %s!", json_string_value(json_object_get(args, "name")));
}

static void tool_slow_compute(nx_mcp_call_t *call, json_t *args, void *data) {
    double seconds = json_number_value(json_object_get(args, "seconds"));
    const char *label = json_string_value(json_object_get(args, "label"));
    char *text = textf("slow_compute %s: done after %gs", label ? label : "(unlabelled)", seconds);
    if (seconds <= 0) {
        /* Nothing to wait for: the answer comes at once, so no task is made. */
        nx_mcp_call_return_text(call, text ? text : "out of memory", text == NULL);
        free(text);
        return;
    }
    steps_start(call, step_text, (uint64_t)(seconds * 1000), text);
}

static void tool_failing_job(nx_mcp_call_t *call, json_t *args, void *data) {
    steps_start(call, step_tool_error, 1000,
                strdup("failing_job ran and failed, as it always does (a tool error)"));
}

static void tool_protocol_error_job(nx_mcp_call_t *call, json_t *args, void *data) {
    steps_start(call, step_protocol_error, 200,
                strdup("protocol_error_job hit an internal error, as it always does"));
}

static void on_delete_confirmed(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                                void *arg) {
    const char *filename = json_string_value(
        json_object_get(json_object_get(nx_mcp_call_params(call), "arguments"), "filename"));
    if (error != NULL) {
        return_textf(call, false, "Elicitation not supported or error: %s", error_message(error));
        return;
    }
    const char *action = json_string_value(json_object_get(result, "action"));
    const json_t *confirm = json_object_get(json_object_get(result, "content"), "confirm");
    if (action != NULL && strcmp(action, "accept") == 0 && json_is_true(confirm))
        return_textf(call, false, "Deleted %s", filename);
    else
        return_textf(call, false, "Kept %s (action=%s)", filename, action ? action : "none");
}

static void ask_delete(nx_mcp_call_t *call) {
    const char *filename = json_string_value(
        json_object_get(json_object_get(nx_mcp_call_params(call), "arguments"), "filename"));
    char *message = textf("Delete %s?", filename);
    ask(call, "confirm", "elicitation/create",
        elicit_params(message ? message : "Delete the file?", CONFIRM_SCHEMA), on_delete_confirmed);
    free(message);
}

static bool step_confirm_delete(stepper_t *st) {
    if (st->step == 0) return true;
    ask_delete(st->call);
    return false;
}

/* Statelessly, the question comes a moment after the call, so that a client with the tasks
 * extension finds it in tasks/get (input_required); the answer is taken at once. */
static void tool_confirm_delete(nx_mcp_call_t *call, json_t *args, void *data) {
    const json_t *responses = NULL;
    if (nx_mcp_call_is_stateless(call)) {
        if (!read_responses(call, &responses)) return;
        if (json_object_get(responses, "confirm") == NULL) {
            if (!client_can(call, "elicitation"))
                missing_capability(call, "elicitation");
            else
                steps_start(call, step_confirm_delete, 100, NULL);
            return;
        }
    }
    ask_delete(call);
}

/* The two questions of multi_input, asked together. */
static const struct {
    const char *key, *message, *schema;
} multi_asks[] = {
    {"user_name", "What is your name?", NAME_SCHEMA},
    {"confirmation", "Go ahead?", CONFIRM_SCHEMA},
};

/* One round of multi_input: answers once both questions are answered under our state, else
 * asks what is missing; a first round asks <delay_ms> later (0: now). */
static void multi_input_round(nx_mcp_call_t *call, uint64_t delay_ms);

static bool step_multi_input(stepper_t *st) {
    if (st->step == 0) return true;
    multi_input_round(st->call, 0);
    return false;
}

static void multi_input_round(nx_mcp_call_t *call, uint64_t delay_ms) {
    round_t r;
    if (!round_begin(call, &r)) return;
    if (!client_can(call, "elicitation")) {
        missing_capability(call, "elicitation");
        json_decref(r.state);
        return;
    }
    if (r.state == NULL && delay_ms > 0) {
        steps_start(call, step_multi_input, delay_ms, NULL);
        return;
    }
    /* Without our state this is a first round, whatever answers came along. */
    const json_t *got[2] = {NULL, NULL};
    json_t *missing = json_object();
    for (size_t i = 0; i < 2; i++) {
        const char *key = multi_asks[i].key;
        int rc =
            take_answer(call, r.state ? r.responses : NULL, key, "elicitation/create", &got[i]);
        if (rc < 0) {
            json_decref(missing);
            json_decref(r.state);
            return;
        }
        if (rc == 0)
            json_object_set_new(
                missing, key,
                input_request("elicitation/create",
                              elicit_params(multi_asks[i].message, multi_asks[i].schema)));
    }
    if (json_object_size(missing) > 0) {
        return_sealed(call, &r, missing, json_pack("{s:i}", "step", 1));
    } else {
        json_decref(missing);
        const char *name = elicited(got[0], "name");
        const json_t *go = json_object_get(json_object_get(got[1], "content"), "confirm");
        return_textf(call, false, "Received: name=%s, confirm=%s", name ? name : "-",
                     json_is_true(go) ? "true" : "false");
    }
    json_decref(r.state);
}

static void tool_multi_input(nx_mcp_call_t *call, json_t *args, void *data) {
    multi_input_round(call, 100);
}

/* Round 1 asks the user's name inline (MRTR, no task yet); round 2 takes it and goes on from a
 * timer, which makes it a task (SEP-2663: MRTR before task creation). */
static void tool_with_task(nx_mcp_call_t *call, json_t *args, void *data) {
    round_t r;
    if (!round_begin(call, &r)) return;
    const json_t *answer = NULL;
    int rc =
        r.state ? take_answer(call, r.responses, "user_name", "elicitation/create", &answer) : 0;
    if (rc > 0) {
        const char *name = elicited(answer, "name");
        steps_start(call, step_text, 300,
                    textf("Hello, %s! (answered by a task)", name ? name : "stranger"));
    } else if (rc == 0 && !client_can(call, "elicitation")) {
        missing_capability(call, "elicitation");
    } else if (rc == 0) {
        json_t *req =
            input_request("elicitation/create", elicit_params("What is your name?", NAME_SCHEMA));
        return_sealed(call, &r, json_pack("{s:o}", "user_name", req),
                      json_pack("{s:i}", "step", 1));
    }
    json_decref(r.state);
}

/* ---- resources ---- */

static void return_contents(nx_mcp_call_t *call, const char *uri, const char *mime, const char *key,
                            const char *value) {
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
                                       mime, key, value));
}

static void resource_static_text(nx_mcp_call_t *call, json_t *args, void *data) {
    return_contents(call, "test://static-text", "text/plain", "text",
                    "This is the content of the static text resource.");
}

static void resource_static_binary(nx_mcp_call_t *call, json_t *args, void *data) {
    return_contents(call, "test://static-binary", "image/png", "blob", IMG);
}

static void resource_watched(nx_mcp_call_t *call, json_t *args, void *data) {
    return_contents(call, "test://watched-resource", "text/plain", "text",
                    "Watched resource content");
}

static void resource_template(nx_mcp_call_t *call, json_t *args, void *data) {
    const char *id = json_string_value(json_object_get(json_object_get(args, "variables"), "id"));
    json_t *body =
        json_pack("{s:s, s:b, s:s+}", "id", id, "templateTest", 1, "data", "Data for ID: ", id);
    char *text = compact(body);
    json_decref(body);
    return_contents(call, json_string_value(json_object_get(args, "uri")), "application/json",
                    "text", text);
    free(text);
}

/* ---- prompts and completion ---- */

static void prompt_simple(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(call,
                       json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user", "content",
                                 "type", "text", "text", "This is a simple prompt for testing."));
}

static void prompt_with_arguments(nx_mcp_call_t *call, json_t *args, void *data) {
    char *text = NULL;
    if (asprintf(&text, "Prompt with arguments: arg1='%s', arg2='%s'",
                 json_string_value(json_object_get(args, "arg1")),
                 json_string_value(json_object_get(args, "arg2"))) < 0) {
        nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user",
                                       "content", "type", "text", "text", text));
    free(text);
}

static void prompt_with_embedded_resource(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(
        call, json_pack("{s:[{s:s, s:{s:s, s:{s:O, s:s, s:s}}}, {s:s, s:{s:s, s:s}}]}", "messages",
                        "role", "user", "content", "type", "resource", "resource", "uri",
                        json_object_get(args, "resourceUri"), "mimeType", "text/plain", "text",
                        "Embedded resource content for testing.", "role", "user", "content", "type",
                        "text", "text", "Please process the embedded resource above."));
}

static void prompt_with_image(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return(call,
                       json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}, {s:s, s:{s:s, s:s}}]}", "messages",
                                 "role", "user", "content", "type", "image", "data", IMG,
                                 "mimeType", "image/png", "role", "user", "content", "type", "text",
                                 "text", "Please analyze the image above."));
}

/* Completes the arguments of test_prompt_with_arguments and the id of the template from small
 * fixed lists: the values that start with what was typed. */
static void complete(nx_mcp_call_t *call, json_t *params, void *data) {
    static const char *const arg_values[] = {"testValue1", "testValue2", "test-alpha", "test-beta",
                                             "example"};
    static const char *const id_values[] = {"123", "124", "456", "789"};
    const json_t *ref = json_object_get(params, "ref");
    const char *target = json_string_value(json_object_get(ref, "name"));        /* ref/prompt */
    if (target == NULL) target = json_string_value(json_object_get(ref, "uri")); /* ref/resource */
    const json_t *argument = json_object_get(params, "argument");
    const char *arg = json_string_value(json_object_get(argument, "name"));
    const char *typed = json_string_value(json_object_get(argument, "value"));
    const char *const *list = NULL;
    size_t n = 0;
    if (target != NULL && strcmp(target, "test_prompt_with_arguments") == 0 &&
        (strcmp(arg, "arg1") == 0 || strcmp(arg, "arg2") == 0)) {
        list = arg_values;
        n = sizeof(arg_values) / sizeof(arg_values[0]);
    } else if (target != NULL && strcmp(target, "test://template/{id}/data") == 0 &&
               strcmp(arg, "id") == 0) {
        list = id_values;
        n = sizeof(id_values) / sizeof(id_values[0]);
    }
    json_t *values = json_array();
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], typed, strlen(typed)) == 0)
            json_array_append_new(values, json_string(list[i]));
    size_t total = json_array_size(values);
    nx_mcp_call_return(call, json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", values,
                                       "total", (json_int_t)total, "hasMore", 0));
}

/* ---- the catalog ---- */

/* Served verbatim in tools/list (SEP-1613, SEP-2106): every 2020-12 keyword must survive. */
static const char SCHEMA_2020_12[] =
    "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
    "\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\",\"properties\":{"
    "\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":\"#/$defs/address\"},"
    "\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},"
    "\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"}},"
    "\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}],"
    "\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},"
    "\"required\":[\"contactMethod\"]},"
    "\"then\":{\"required\":[\"phone\"]},\"else\":{\"required\":[\"email\"]},"
    "\"additionalProperties\":false}";

/* In the order of FIXTURES.md §2.3 and §2.7: header tests call the first one with {}. */
/* Designated initializers: tool, resource and prompt definitions grow fields over time. */
#define TOOL(n, desc, schema, fn)                                                                  \
    { .name = n, .description = desc, .input_schema = schema, .handler = fn }

#define TASK_TOOL(n, desc, schema, fn, ts)                                                         \
    { .name = n, .description = desc, .input_schema = schema, .handler = fn, .task_support = ts }

static const nx_mcp_tool_def_t tools[] = {
    TOOL("test_simple_text", "Tests simple text content response", NO_ARGS, tool_simple_text),
    TOOL("test_image_content", "Tests image content response", NO_ARGS, tool_image_content),
    TOOL("test_audio_content", "Tests audio content response", NO_ARGS, tool_audio_content),
    TOOL("test_embedded_resource", "Tests embedded resource content response", NO_ARGS,
         tool_embedded_resource),
    TOOL("test_multiple_content_types",
         "Tests response with multiple content types (text, image, resource)", NO_ARGS,
         tool_multiple_content_types),
    TOOL("test_tool_with_logging", "Tests tool that emits log messages during execution", NO_ARGS,
         tool_with_logging),
    TOOL("test_tool_with_progress", "Tests tool that reports progress notifications", NO_ARGS,
         tool_with_progress),
    TOOL("test_error_handling", "Tests error response handling", NO_ARGS, tool_error_handling),
    TOOL("test_reconnection",
         "Tests SSE stream disconnection and client reconnection (SEP-1699): closes the stream "
         "mid-call and answers on the resumed stream",
         NO_ARGS, tool_reconnection),
    TOOL("test_sampling", "Tests server-initiated sampling (LLM completion request)",
         "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\",\"description\":"
         "\"The prompt to send to the LLM\"}},\"required\":[\"prompt\"]}",
         tool_sampling),
    TOOL("test_elicitation", "Tests server-initiated elicitation (user input request)",
         "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\",\"description\":"
         "\"The message to show the user\"}},\"required\":[\"message\"]}",
         tool_elicitation),
    TOOL("test_elicitation_sep1034_defaults",
         "Tests elicitation with default values for all primitive types (SEP-1034)", NO_ARGS,
         tool_elicitation_sep1034_defaults),
    TOOL("test_elicitation_sep1330_enums",
         "Tests elicitation with enum schema improvements (SEP-1330)", NO_ARGS,
         tool_elicitation_sep1330_enums),
    TOOL("json_schema_2020_12_tool",
         "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
         SCHEMA_2020_12, tool_json_schema_2020_12),
    TOOL("test_missing_capability",
         "Requires the client capability sampling: fails with -32021 when the request does not "
         "declare it, else returns Success",
         NO_ARGS, tool_missing_capability),
    TOOL("test_streaming_elicitation",
         "Streams its answer without ever sending the client a request (stateless servers must "
         "not)",
         NO_ARGS, tool_streaming_elicitation),
    TOOL("test_logging_tool",
         "Logs one message, which is sent only if the client asked for logs, and returns "
         "Logging evaluated",
         NO_ARGS, tool_logging_tool),
    TOOL("test_trigger_tool_change",
         "Sends notifications/tools/list_changed to every client listening on this thread", NO_ARGS,
         tool_trigger_tool_change),
    TOOL("test_trigger_prompt_change",
         "Sends notifications/prompts/list_changed to every client listening on this thread",
         NO_ARGS, tool_trigger_prompt_change),
    TOOL("test_input_required_result_elicitation",
         "MRTR: asks the user's name by elicitation (input_required), then greets them", NO_ARGS,
         tool_irr_elicitation),
    TOOL("test_input_required_result_sampling",
         "MRTR: asks the client to sample an answer (input_required), then returns it", NO_ARGS,
         tool_irr_sampling),
    TOOL("test_input_required_result_list_roots",
         "MRTR: asks the client for its roots (input_required), then counts them", NO_ARGS,
         tool_irr_list_roots),
    TOOL("test_input_required_result_request_state",
         "MRTR: asks for a confirmation with an integrity-protected requestState, and checks "
         "it on the retry",
         NO_ARGS, tool_irr_request_state),
    TOOL("test_input_required_result_multiple_inputs",
         "MRTR: asks an elicitation, a sampling and roots/list at once", NO_ARGS,
         tool_irr_multiple_inputs),
    TOOL("test_input_required_result_multi_round",
         "MRTR: two rounds of input (name, then color), each with a new requestState", NO_ARGS,
         tool_irr_multi_round),
    TOOL("test_input_required_result_tampered_state",
         "MRTR: rejects a requestState that fails its HMAC check with -32602", NO_ARGS,
         tool_irr_tampered_state),
    TOOL("test_input_required_result_capabilities",
         "MRTR: asks only for the kinds of input the client declared it can give", NO_ARGS,
         tool_irr_capabilities),
    TOOL("test_custom_header",
         "Returns its region, which the client must also send in the Mcp-Param-Region header "
         "(SEP-2243 x-mcp-header)",
         "{\"type\":\"object\",\"properties\":{\"region\":{\"type\":\"string\",\"description\":"
         "\"The region to report\",\"x-mcp-header\":\"Region\"}},\"required\":[\"region\"]}",
         tool_custom_header),
    TASK_TOOL("greet", "Greets {name} at once; never a task", NAME_SCHEMA, tool_greet,
              NX_MCP_TASK_FORBIDDEN),
    TASK_TOOL(
        "slow_compute",
        "Answers after {seconds} seconds (at once when 0): a task for a client with the tasks "
        "extension; cancelling the task stops it",
        "{\"type\":\"object\",\"properties\":{\"seconds\":{\"type\":\"number\","
        "\"minimum\":0,\"maximum\":3600},\"label\":{\"type\":\"string\"}},"
        "\"required\":[\"seconds\"]}",
        tool_slow_compute, NX_MCP_TASK_OPTIONAL),
    TASK_TOOL("failing_job", "Runs only as a task, and returns a tool error after about 1 s",
              NO_ARGS, tool_failing_job, NX_MCP_TASK_REQUIRED),
    TASK_TOOL("protocol_error_job",
              "Fails with a protocol error (-32603) after a short delay: a failed task", NO_ARGS,
              tool_protocol_error_job, NX_MCP_TASK_OPTIONAL),
    TASK_TOOL("confirm_delete",
              "Asks to confirm deleting {filename} (elicitation), then says what it did; a task "
              "waits in input_required for the answer",
              "{\"type\":\"object\",\"properties\":{\"filename\":{\"type\":\"string\"}},"
              "\"required\":[\"filename\"]}",
              tool_confirm_delete, NX_MCP_TASK_OPTIONAL),
    TASK_TOOL("multi_input",
              "Asks two questions at once (name and confirmation), then repeats the answers",
              NO_ARGS, tool_multi_input, NX_MCP_TASK_OPTIONAL),
    TASK_TOOL("test_tool_with_task",
              "Runs only as a task: asks the user's name (input_required) before the task "
              "starts, then greets them from the task",
              NO_ARGS, tool_with_task, NX_MCP_TASK_REQUIRED),
};

static const nx_mcp_resource_def_t resources[] = {
    {.uri = "test://static-text",
     .name = "static-text",
     .title = "Static Text Resource",
     .description = "A static text resource for testing",
     .mime_type = "text/plain",
     .handler = resource_static_text},
    {.uri = "test://static-binary",
     .name = "static-binary",
     .title = "Static Binary Resource",
     .description = "A static binary resource (image) for testing",
     .mime_type = "image/png",
     .handler = resource_static_binary},
    {.uri = "test://watched-resource",
     .name = "watched-resource",
     .title = "Watched Resource",
     .description = "A resource that auto-updates every 3 seconds",
     .mime_type = "text/plain",
     .handler = resource_watched},
    {.uri = "test://template/{id}/data",
     .is_template = true,
     .name = "template",
     .title = "Resource Template",
     .description = "A resource template with parameter substitution",
     .mime_type = "application/json",
     .handler = resource_template},
};

static const nx_mcp_prompt_arg_t prompt_args[] = {
    {.name = "arg1", .description = "First test argument", .required = true},
    {.name = "arg2", .description = "Second test argument", .required = true},
};
static const nx_mcp_prompt_arg_t resource_uri_arg[] = {
    {.name = "resourceUri", .description = "URI of the resource to embed", .required = true},
};

static const nx_mcp_prompt_def_t prompts[] = {
    {.name = "test_simple_prompt",
     .title = "Simple Test Prompt",
     .description = "A simple prompt without arguments",
     .handler = prompt_simple},
    {.name = "test_prompt_with_arguments",
     .title = "Prompt With Arguments",
     .description = "A prompt with required arguments",
     .arguments = prompt_args,
     .argument_count = 2,
     .handler = prompt_with_arguments},
    {.name = "test_prompt_with_embedded_resource",
     .title = "Prompt With Embedded Resource",
     .description = "A prompt that includes an embedded resource",
     .arguments = resource_uri_arg,
     .argument_count = 1,
     .handler = prompt_with_embedded_resource},
    {.name = "test_prompt_with_image",
     .title = "Prompt With Image",
     .description = "A prompt that includes image content",
     .handler = prompt_with_image},
    {.name = "test_input_required_result_prompt",
     .description = "MRTR: prompt that requires elicitation input",
     .handler = prompt_irr},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int setup(nx_mcp_server_t *server, void *arg, char *err, size_t errlen) {
    if (RAND_bytes(state_key, sizeof(state_key)) != 1) {
        snprintf(err, errlen, "no random bytes for the requestState key");
        return NX_ECONFIG;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < COUNT(tools); i++)
        rc = nx_mcp_server_add_tool(server, &tools[i], err, errlen);
    for (size_t i = 0; rc == 0 && i < COUNT(resources); i++)
        rc = nx_mcp_server_add_resource(server, &resources[i], err, errlen);
    for (size_t i = 0; rc == 0 && i < COUNT(prompts); i++)
        rc = nx_mcp_server_add_prompt(server, &prompts[i], err, errlen);
    if (rc == 0) nx_mcp_server_set_completion(server, complete, NULL);
    return rc;
}

/* --stdio-gateway: nexus as a gateway in front of this same program on stdio, the fixtures
 * reaching the suite only through the federation (unprefixed); --http-gateway URL: the same in
 * front of a fixtures server at URL over Streamable HTTP. The configuration lives in a memory
 * file, so nothing is left on disk. Returns the path to pass to --config, or NULL. */
static const char *gateway_config(const char *url, char *path, size_t len) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    int fd = memfd_create("nexus-gateway.yaml", MFD_CLOEXEC);
    if (n <= 0 || fd < 0) return NULL;
    self[n] = '\0';
    if (url == NULL)
        dprintf(fd,
                "servers:\n"
                "  - name: fixtures\n"
                "    transport: stdio\n"
                "    command: \"%s\"\n"
                "    args: [\"--stdio\"]\n"
                "    prefix: false\n",
                self);
    else
        dprintf(fd,
                "servers:\n"
                "  - name: fixtures\n"
                "    transport: http\n"
                "    url: \"%s\"\n"
                "    prefix: false\n",
                url);
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return path;
}

int main(int argc, char **argv) {
    static const nx_app_t fixtures = {
        .about = "conformance_server: nexus serving the fixtures of the MCP conformance suite "
                 "(--stdio-gateway as the first argument: through nexus in front of itself on "
                 "stdio; --http-gateway URL: through nexus in front of the fixtures at URL)",
        .setup = setup,
    };
    bool stdio_gw = argc >= 2 && strcmp(argv[1], "--stdio-gateway") == 0;
    bool http_gw = argc >= 3 && strcmp(argv[1], "--http-gateway") == 0;
    if (!stdio_gw && !http_gw) return nx_app_main(argc, argv, &fixtures);
    char path[64];
    if (gateway_config(http_gw ? argv[2] : NULL, path, sizeof(path)) == NULL) {
        perror("conformance_server: gateway configuration");
        return 1;
    }
    /* The same command line without the switch, plus the gateway's configuration. */
    char **args = calloc((size_t)argc + 3, sizeof(char *));
    if (args == NULL) return 1;
    int n = 0;
    args[n++] = argv[0];
    args[n++] = "--config";
    args[n++] = path;
    for (int i = http_gw ? 3 : 2; i < argc; i++)
        args[n++] = argv[i];
    int rc = nx_app_main(n, args, NULL);
    free(args);
    return rc;
}

/* MCP HTTP transport rules (see mcp_rules.h). */
#include "mcp_rules.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *const nx_mcp_legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                              "2024-11-05", NULL};
const char *const nx_mcp_loopback_hosts[] = {"localhost", "127.0.0.1", "::1", NULL};

bool nx_mcp_version_supported(nx_str_t v) {
    if (nx_str_eq(v, NX_STR(NX_MCP_MODERN_VERSION))) return true;
    for (const char *const *p = nx_mcp_legacy_versions; *p != NULL; p++)
        if (nx_str_eq(v, nx_str_from(*p))) return true;
    return false;
}

static nx_str_t trim(nx_str_t s) {
    while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t'))
        s.p++, s.n--;
    while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

bool nx_mcp_version_is_legacy(nx_str_t v) {
    for (const char *const *p = nx_mcp_legacy_versions; *p != NULL; p++)
        if (nx_str_eq(v, nx_str_from(*p))) return true;
    return false;
}

bool nx_mcp_params_are_modern(const json_t *params) {
    return json_object_get(json_object_get(params, "_meta"), NX_MCP_META_VERSION) != NULL;
}

int nx_mcp_check_modern_meta(const json_t *params, nx_str_t header_version, char *msg,
                             size_t msglen, json_t **data) {
    *data = NULL;
    json_t *meta = json_object_get(params, "_meta");
    const char *version = json_string_value(json_object_get(meta, NX_MCP_META_VERSION));
    if (!json_is_object(meta) || version == NULL) {
        snprintf(msg, msglen, "params._meta[\"%s\"] is required (a string) in protocol %s",
                 NX_MCP_META_VERSION, NX_MCP_MODERN_VERSION);
        return -32602;
    }
    if (!json_is_object(json_object_get(meta, NX_MCP_META_CAPABILITIES))) {
        snprintf(msg, msglen, "params._meta[\"%s\"] is required (an object) in protocol %s",
                 NX_MCP_META_CAPABILITIES, NX_MCP_MODERN_VERSION);
        return -32602;
    }
    if (header_version.p != NULL && !nx_str_eq(header_version, nx_str_from(version))) {
        snprintf(msg, msglen,
                 "the MCP-Protocol-Version header (%.*s) does not match params._meta (%.40s)",
                 (int)(header_version.n > 40 ? 40 : header_version.n), header_version.p, version);
        return -32020;
    }
    if (strcmp(version, NX_MCP_MODERN_VERSION) != 0) {
        snprintf(msg, msglen, "unsupported protocol version '%.40s'; supported: %s", version,
                 NX_MCP_MODERN_VERSION);
        *data = json_pack("{s:[s], s:s}", "supported", NX_MCP_MODERN_VERSION, "requested", version);
        return -32022;
    }
    return 0;
}

int nx_mcp_check_routing_headers(nx_str_t mcp_method, nx_str_t mcp_name, const char *method,
                                 const json_t *params, char *msg, size_t msglen) {
    if (mcp_method.p == NULL) {
        snprintf(msg, msglen, "the Mcp-Method header is required (it must repeat the method)");
        return -32020;
    }
    if (!nx_str_eq(mcp_method, nx_str_from(method))) {
        snprintf(msg, msglen, "the Mcp-Method header (%.*s) does not match the method (%.64s)",
                 (int)(mcp_method.n > 64 ? 64 : mcp_method.n), mcp_method.p, method);
        return -32020;
    }
    const char *key = NULL;
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
        key = "name";
    else if (strcmp(method, "resources/read") == 0)
        key = "uri";
    else if (strcmp(method, "tasks/get") == 0 || strcmp(method, "tasks/update") == 0 ||
             strcmp(method, "tasks/cancel") == 0)
        key = "taskId";
    if (key == NULL) return 0;
    const char *want = json_string_value(json_object_get(params, key));
    nx_str_t got = trim(mcp_name);
    if (mcp_name.p == NULL) {
        snprintf(msg, msglen, "the Mcp-Name header is required for %s (it must repeat params.%s)",
                 method, key);
        return -32020;
    }
    if (want == NULL || !nx_str_eq(got, nx_str_from(want))) {
        snprintf(msg, msglen, "the Mcp-Name header (%.*s) does not match params.%s",
                 (int)(got.n > 64 ? 64 : got.n), got.p, key);
        return -32020;
    }
    return 0;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int nx_mcp_param_header_decode(nx_str_t v, char *out, size_t cap, size_t *len) {
    static const char pre[] = "=?base64?", post[] = "?=";
    size_t np = sizeof(pre) - 1, nq = sizeof(post) - 1;
    if (v.n < np + nq || memcmp(v.p, pre, np) != 0 || memcmp(v.p + v.n - nq, post, nq) != 0) {
        if (v.n > cap) return -1; /* a literal value */
        memcpy(out, v.p, v.n);
        *len = v.n;
        return 0;
    }
    const unsigned char *p = (const unsigned char *)v.p + np;
    size_t n = v.n - np - nq, o = 0;
    if (n % 4 != 0) return -1; /* padding is required */
    for (size_t i = 0; i < n; i += 4) {
        int q[4];
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            bool last_quad = i + 4 == n;
            if (p[i + k] == '=' && last_quad && k >= 2) {
                q[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (q[k] = b64_value(p[i + k])) < 0) return -1;
        }
        uint32_t bits =
            (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | (uint32_t)q[3];
        size_t bytes = 3 - pad;
        if (o + bytes > cap) return -1;
        for (size_t k = 0; k < bytes; k++)
            out[o++] = (char)(bits >> (16 - 8 * k));
    }
    *len = o;
    return 0;
}

const char *nx_mcp_negotiate_version(nx_str_t requested) {
    for (const char *const *p = nx_mcp_legacy_versions; *p != NULL; p++)
        if (nx_str_eq(requested, nx_str_from(*p))) return *p;
    return nx_mcp_legacy_versions[0];
}

/* True if some media range of <accept> with q > 0 covers <type>/<sub>. */
static bool accepts(nx_str_t accept, const char *type, const char *sub) {
    const char *p = accept.p, *end = accept.p + accept.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        nx_str_t item = {p, (size_t)((comma ? comma : end) - p)};
        p = comma ? comma + 1 : end;
        const char *semi = memchr(item.p, ';', item.n);
        nx_str_t range = trim((nx_str_t){item.p, semi ? (size_t)(semi - item.p) : item.n});
        /* q=0 means "not acceptable". */
        bool q0 = false;
        for (const char *q = semi; q != NULL && q < item.p + item.n;) {
            const char *next = memchr(q + 1, ';', (size_t)(item.p + item.n - q - 1));
            nx_str_t param =
                trim((nx_str_t){q + 1, (size_t)((next ? next : item.p + item.n) - q - 1)});
            if (param.n >= 3 && (param.p[0] == 'q' || param.p[0] == 'Q') && param.p[1] == '=') {
                /* qvalue = "0" [ "." 0*3DIGIT ] / "1" ...: zero when every digit is 0. */
                bool zero = true;
                for (size_t k = 2; k < param.n; k++)
                    if (param.p[k] != '0' && param.p[k] != '.') zero = false;
                if (zero) q0 = true;
            }
            q = next;
        }
        if (q0) continue;
        const char *slash = memchr(range.p, '/', range.n);
        if (slash == NULL) continue;
        nx_str_t rt = {range.p, (size_t)(slash - range.p)};
        nx_str_t rs = {slash + 1, range.n - rt.n - 1};
        bool type_ok = nx_str_eq(rt, NX_STR("*")) || nx_str_eq_lit_nocase(rt, type);
        bool sub_ok = nx_str_eq(rs, NX_STR("*")) || nx_str_eq_lit_nocase(rs, sub);
        if (type_ok && sub_ok) return true;
    }
    return false;
}

int nx_mcp_check_accept(nx_str_t accept, bool is_post, char *msg, size_t msglen) {
    bool sse = accepts(accept, "text", "event-stream");
    if (!is_post) {
        if (sse) return 0;
        snprintf(msg, msglen, "GET needs Accept: text/event-stream");
        return 406;
    }
    bool json = accepts(accept, "application", "json");
    if (json && sse) return 0;
    snprintf(msg, msglen, "POST needs Accept to list both application/json and text/event-stream%s",
             accept.n == 0 ? " (the header is missing)" : "");
    return 406;
}

int nx_mcp_check_protocol_header(nx_str_t header, nx_str_t *version, char *msg, size_t msglen) {
    nx_str_t v = trim(header);
    if (header.p == NULL || v.n == 0) {
        *version = NX_STR(NX_MCP_DEFAULT_HEADER_VERSION);
        return 0;
    }
    if (!nx_mcp_version_supported(v)) {
        snprintf(msg, msglen,
                 "unsupported MCP-Protocol-Version '%.*s'; supported: %s, %s, %s, %s, %s",
                 (int)(v.n > 40 ? 40 : v.n), v.p, NX_MCP_MODERN_VERSION, nx_mcp_legacy_versions[0],
                 nx_mcp_legacy_versions[1], nx_mcp_legacy_versions[2], nx_mcp_legacy_versions[3]);
        return 400;
    }
    *version = v;
    return 0;
}

bool nx_mcp_host_part(nx_str_t hostport, char *out, size_t outlen) {
    nx_str_t h = trim(hostport);
    if (h.n == 0) return false;
    size_t n;
    const char *start = h.p;
    if (h.p[0] == '[') {
        const char *close = memchr(h.p, ']', h.n);
        if (close == NULL) return false;
        start = h.p + 1;
        n = (size_t)(close - start);
        size_t rest = h.n - (size_t)(close + 1 - h.p);
        if (rest != 0 && close[1] != ':') return false;
    } else {
        const char *colon = memchr(h.p, ':', h.n);
        n = colon ? (size_t)(colon - h.p) : h.n;
        if (colon != NULL && memchr(colon + 1, ':', h.n - n - 1) != NULL) return false;
    }
    if (n == 0 || n >= outlen) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)start[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '@') return false;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return true;
}

static bool host_allowed(const nx_mcp_origin_policy_t *p, const char *host) {
    for (const char *const *h = p->allowed_hosts; h != NULL && *h != NULL; h++)
        if (strcasecmp(*h, host) == 0) return true;
    return false;
}

int nx_mcp_check_origin(const nx_mcp_origin_policy_t *p, nx_str_t origin, nx_str_t host, char *msg,
                        size_t msglen) {
    if (p->allow_any) return 0;
    char name[256];
    /* "Origin: null" (sandboxed frames, file: pages) names no host we could allow: refused. */
    if (origin.p != NULL && origin.n > 0) {
        nx_str_t o = trim(origin);
        const char *scheme_end = memmem(o.p, o.n, "://", 3);
        if (scheme_end == NULL) {
            snprintf(msg, msglen, "malformed Origin header");
            return 403;
        }
        nx_str_t rest = {scheme_end + 3, (size_t)(o.p + o.n - scheme_end - 3)};
        const char *slash = memchr(rest.p, '/', rest.n);
        if (slash != NULL) rest.n = (size_t)(slash - rest.p);
        if (!nx_mcp_host_part(rest, name, sizeof(name)) || !host_allowed(p, name)) {
            snprintf(msg, msglen, "Origin '%.*s' is not allowed (DNS-rebinding protection)",
                     (int)(o.n > 100 ? 100 : o.n), o.p);
            return 403;
        }
    }
    if (host.p == NULL || host.n == 0) return 0; /* HTTP/1.0 without Host: nothing to check */
    if (!nx_mcp_host_part(host, name, sizeof(name)) || !host_allowed(p, name)) {
        snprintf(msg, msglen, "Host '%.*s' is not allowed (DNS-rebinding protection)",
                 (int)(host.n > 100 ? 100 : host.n), host.p);
        return 403;
    }
    return 0;
}

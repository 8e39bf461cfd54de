/* The JSON Schema validator: every supported keyword passing and failing with its path and
 * message, nested paths, $ref and recursion, translated patterns, bounds on hostile schemas and
 * instances, compile errors with their location, and a realistic MCP tool inputSchema. */
#include <criterion/criterion.h>

#include "jsonschema.h"
#include "nexus/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    cr_assert_not_null(j, "bad JSON in test: %s (%s)", text, je.text);
    return j;
}

static nx_schema_t *compile(const char *text) {
    json_t *j = parse(text);
    nx_schema_error_t err;
    nx_schema_t *s = nx_schema_compile(j, &err);
    json_decref(j); /* the compiled schema keeps its own copy */
    cr_assert_not_null(s, "%s: %s", text, err.message);
    return s;
}

static int validate(const nx_schema_t *s, const char *instance, nx_schema_error_t *err) {
    json_t *j = parse(instance);
    int rc = nx_schema_validate(s, j, err);
    json_decref(j);
    return rc;
}

static void ok(const nx_schema_t *s, const char *instance) {
    nx_schema_error_t err;
    int rc = validate(s, instance, &err);
    cr_assert_eq(rc, 0, "%s should be valid, got %s: %s", instance, err.path, err.message);
}

/* Asserts the first violation of <instance>: its path, keyword and a message substring. */
static void bad(const nx_schema_t *s, const char *instance, const char *path, const char *keyword,
                const char *message) {
    nx_schema_error_t err;
    int rc = validate(s, instance, &err);
    cr_assert_eq(rc, NX_EPROTO, "%s should be invalid (rc %d)", instance, rc);
    cr_assert_str_eq(err.path, path, "%s: path", instance);
    cr_assert_str_eq(err.keyword, keyword, "%s: keyword (message %s)", instance, err.message);
    cr_assert(strstr(err.message, message) != NULL, "%s: message \"%s\" lacks \"%s\"", instance,
              err.message, message);
}

/* Asserts that <schema> does not compile, with <path> as the location and <message> in the
 * text (which also starts with the location). */
static void bad_schema(const char *schema, const char *path, const char *message) {
    json_t *j = parse(schema);
    nx_schema_error_t err;
    nx_schema_t *s = nx_schema_compile(j, &err);
    json_decref(j);
    cr_assert_null(s, "%s should not compile", schema);
    cr_assert_str_eq(err.path, path, "%s: location (message %s)", schema, err.message);
    cr_assert(strstr(err.message, message) != NULL, "%s: message \"%s\" lacks \"%s\"", schema,
              err.message, message);
    cr_assert_eq(strncmp(err.message, path[0] ? path : "schema", strlen(path[0] ? path : "schema")),
                 0, "message names the location: %s", err.message);
}

static void check(const char *schema, const char *good, const char *wrong, const char *path,
                  const char *keyword, const char *message) {
    nx_schema_t *s = compile(schema);
    ok(s, good);
    bad(s, wrong, path, keyword, message);
    nx_schema_free(s);
}

Test(jsonschema, type_names) {
    check("{\"type\":\"string\"}", "\"x\"", "42", "", "type", "must be a string, got number");
    check("{\"type\":\"number\"}", "4.5", "\"4.5\"", "", "type", "must be a number, got string");
    check("{\"type\":\"boolean\"}", "false", "null", "", "type", "must be a boolean, got null");
    check("{\"type\":\"null\"}", "null", "0", "", "type", "must be null, got number");
    check("{\"type\":\"object\"}", "{}", "[]", "", "type", "must be an object, got array");
    check("{\"type\":\"array\"}", "[]", "{}", "", "type", "must be an array, got object");
    check("{\"type\":[\"string\",\"null\"]}", "null", "true", "", "type",
          "must be a string or null, got boolean");
    check("{\"type\":[\"integer\",\"string\",\"array\"]}", "[1]", "1.5", "", "type",
          "must be a string, an integer or an array, got number");
}

Test(jsonschema, integer_is_a_number_without_fraction) {
    nx_schema_t *s = compile("{\"type\":\"integer\"}");
    ok(s, "3");
    ok(s, "-7");
    ok(s, "3.0"); /* a real that is integral */
    ok(s, "1e300");
    bad(s, "3.5", "", "type", "must be an integer, got number");
    bad(s, "\"3\"", "", "type", "must be an integer, got string");
    nx_schema_free(s);
    s = compile("{\"type\":\"number\"}");
    ok(s, "3");
    ok(s, "3.5");
    nx_schema_free(s);
}

Test(jsonschema, big_integers_compare_exactly) {
    /* 2^53 + 1 has no double: comparing through doubles would call these equal. */
    nx_schema_t *s = compile("{\"minimum\":9007199254740993}");
    ok(s, "9007199254740993");
    ok(s, "9223372036854775807");
    bad(s, "9007199254740992", "", "minimum", "must be >= 9007199254740993");
    nx_schema_free(s);
    s = compile("{\"exclusiveMaximum\":9007199254740992.0}");
    ok(s, "9007199254740991");
    bad(s, "9007199254740992", "", "exclusiveMaximum", "must be < 9007199254740992");
    bad(s, "9007199254740993", "", "exclusiveMaximum", "must be <");
    nx_schema_free(s);
    check("{\"enum\":[9007199254740993]}", "9007199254740993", "9007199254740992", "", "enum",
          "must be one of: 9007199254740993");
    check("{\"multipleOf\":3}", "9223372036854775806", "9223372036854775807", "", "multipleOf",
          "must be a multiple of 3");
}

Test(jsonschema, enum_and_const) {
    check("{\"enum\":[\"a\",\"b\"]}", "\"b\"", "\"c\"", "", "enum", "must be one of: \"a\", \"b\"");
    /* Objects compare deeply and without regard to member order; numbers mathematically. */
    nx_schema_t *s = compile("{\"enum\":[{\"a\":1,\"b\":[1,2]},null,2]}");
    ok(s, "{\"b\":[1,2],\"a\":1.0}");
    ok(s, "null");
    ok(s, "2.0");
    bad(s, "{\"a\":1,\"b\":[2,1]}", "", "enum", "must be one of: {\"a\":1,\"b\":[1,2]}, null, 2");
    bad(s, "{\"a\":1}", "", "enum", "must be one of");
    bad(s, "false", "", "enum", "must be one of");
    nx_schema_free(s);
    check("{\"const\":{\"k\":[true,{\"x\":\"y\"}]}}", "{\"k\":[true,{\"x\":\"y\"}]}",
          "{\"k\":[true,{\"x\":\"z\"}]}", "", "const",
          "must be equal to {\"k\":[true,{\"x\":\"y\"}]}");
    check("{\"const\":null}", "null", "0", "", "const", "must be equal to null");
    s = compile("{\"enum\":[]}");
    bad(s, "null", "", "enum", "enum is empty");
    nx_schema_free(s);
}

Test(jsonschema, nested_paths) {
    nx_schema_t *s = compile("{\"properties\":{\"a\":{\"properties\":{\"b\":{\"items\":"
                             "{\"properties\":{\"c\":{\"type\":\"string\"}}}}}}}}");
    ok(s, "{\"a\":{\"b\":[{\"c\":\"x\"},{}]}}");
    bad(s, "{\"a\":{\"b\":[{\"c\":1}]}}", "/a/b/0/c", "type", "must be a string, got number");
    bad(s, "{\"a\":{\"b\":[{\"c\":\"ok\"},{\"c\":\"ok\"},{\"c\":[]}]}}", "/a/b/2/c", "type",
        "got array");
    nx_schema_free(s);
    /* Member names are escaped as JSON Pointer tokens. */
    s = compile("{\"properties\":{\"a/b\":{\"properties\":{\"m~n\":{\"type\":\"null\"}}}}}");
    bad(s, "{\"a/b\":{\"m~n\":1}}", "/a~1b/m~0n", "type", "must be null");
    nx_schema_free(s);
}

Test(jsonschema, required) {
    nx_schema_t *s = compile("{\"required\":[\"name\",\"age\"]}");
    ok(s, "{\"name\":\"x\",\"age\":1,\"extra\":true}");
    ok(s, "[1]"); /* required constrains objects only */
    bad(s, "{\"age\":1}", "/name", "required", "is required");
    bad(s, "{\"name\":null}", "/age", "required", "is required");
    nx_schema_error_t errs[8];
    size_t count = 0;
    json_t *j = parse("{}");
    cr_assert_eq(nx_schema_validate_all(s, j, errs, 8, &count), NX_EPROTO);
    json_decref(j);
    cr_assert_eq(count, 2, "both missing members are listed");
    cr_assert_str_eq(errs[0].path, "/name");
    cr_assert_str_eq(errs[1].path, "/age");
    nx_schema_free(s);
}

Test(jsonschema, additional_properties_false) {
    nx_schema_t *s = compile("{\"properties\":{\"a\":{},\"b\":{}},\"additionalProperties\":false}");
    ok(s, "{\"a\":1,\"b\":2}");
    ok(s, "{}");
    bad(s, "{\"a\":1,\"foo\":2}", "", "additionalProperties", "unexpected property \"foo\"");
    /* The first violation is the smallest name, whatever the instance's member order. */
    bad(s, "{\"zeta\":1,\"a\":1,\"alpha\":2}", "", "additionalProperties",
        "unexpected property \"alpha\"");
    bad(s, "{\"alpha\":2,\"zeta\":1}", "", "additionalProperties", "unexpected property \"alpha\"");
    nx_schema_free(s);
    check("{\"properties\":{\"a\":{}},\"additionalProperties\":{\"type\":\"integer\"}}",
          "{\"a\":\"s\",\"n\":1}", "{\"a\":\"s\",\"n\":\"1\"}", "/n", "type",
          "must be an integer, got string");
}

Test(jsonschema, pattern_properties) {
    nx_schema_t *s = compile("{\"properties\":{\"id\":{}},\"patternProperties\":{\"^x-\":"
                             "{\"type\":\"string\"},\"\\\\d$\":{\"type\":\"integer\"}},"
                             "\"additionalProperties\":false}");
    ok(s, "{\"id\":1,\"x-a\":\"s\",\"n1\":1}");
    bad(s, "{\"x-a\":1}", "/x-a", "type", "must be a string");
    bad(s, "{\"n2\":\"two\"}", "/n2", "type", "must be an integer");
    bad(s, "{\"x-9\":\"s\"}", "/x-9", "type", "must be an integer"); /* both patterns apply */
    bad(s, "{\"y\":1}", "", "additionalProperties", "unexpected property \"y\"");
    nx_schema_free(s);
}

Test(jsonschema, min_max_properties) {
    check("{\"minProperties\":2}", "{\"a\":1,\"b\":2}", "{\"a\":1}", "", "minProperties",
          "must have at least 2 properties");
    check("{\"maxProperties\":1}", "{\"a\":1}", "{\"a\":1,\"b\":2}", "", "maxProperties",
          "must have at most 1 property");
}

Test(jsonschema, items_and_prefix_items) {
    check("{\"items\":{\"type\":\"integer\"}}", "[1,2,3]", "[1,2,\"3\"]", "/2", "type",
          "must be an integer, got string");
    nx_schema_t *s =
        compile("{\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}");
    ok(s, "[\"a\",1]");
    ok(s, "[\"a\"]");
    bad(s, "[1,1]", "/0", "type", "must be a string");
    bad(s, "[\"a\",1,null]", "/2", "false", "is not allowed");
    nx_schema_free(s);
    /* The draft-07 spelling: items as an array, then additionalItems. */
    s = compile("{\"items\":[{\"type\":\"string\"}],\"additionalItems\":{\"type\":\"null\"}}");
    ok(s, "[\"a\",null,null]");
    bad(s, "[\"a\",null,0]", "/2", "type", "must be null");
    nx_schema_free(s);
}

Test(jsonschema, min_max_items) {
    check("{\"minItems\":1}", "[0]", "[]", "", "minItems", "must have at least 1 item");
    check("{\"maxItems\":2}", "[0,0]", "[0,0,0]", "", "maxItems", "must have at most 2 items");
}

Test(jsonschema, unique_items) {
    nx_schema_t *s = compile("{\"uniqueItems\":true}");
    ok(s, "[1,2,\"1\",[1],{\"a\":1},{\"a\":2},true,false,null]");
    bad(s, "[1,2,1.0]", "", "uniqueItems", "items 0 and 2 are equal");
    bad(s, "[{\"a\":1,\"b\":2},0,{\"b\":2,\"a\":1}]", "", "uniqueItems", "items 0 and 2");
    bad(s, "[[1,[2]],[1,[2]]]", "", "uniqueItems", "items 0 and 1");
    /* Past the stack buffer the check sorts hashes but reports the same first pair. */
    char big[8192];
    size_t off = 0;
    off += (size_t)snprintf(big + off, sizeof(big) - off, "[");
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, "%s%d", i ? "," : "", i);
    snprintf(big + off, sizeof(big) - off, "]");
    ok(s, big);
    snprintf(big + off, sizeof(big) - off, ",7,250,250]");
    bad(s, big, "", "uniqueItems", "items 7 and 300 are equal");
    nx_schema_free(s);
    s = compile("{\"uniqueItems\":false}");
    ok(s, "[1,1]");
    nx_schema_free(s);
}

Test(jsonschema, numeric_bounds) {
    check("{\"minimum\":1}", "1", "0", "", "minimum", "must be >= 1");
    check("{\"maximum\":10}", "10", "10.5", "", "maximum", "must be <= 10");
    check("{\"exclusiveMinimum\":0}", "0.001", "0", "", "exclusiveMinimum", "must be > 0");
    check("{\"exclusiveMaximum\":5}", "4", "5", "", "exclusiveMaximum", "must be < 5");
    check("{\"minimum\":0.5}", "0.5", "0.4", "", "minimum", "must be >= 0.5");
    check("{\"maximum\":0.1}", "0.1", "0.10000000000000002", "", "maximum", "must be <= 0.1");
    /* Draft 4 wrote exclusiveness as a boolean next to minimum. */
    check("{\"minimum\":1,\"exclusiveMinimum\":true}", "2", "1", "", "exclusiveMinimum",
          "must be > 1");
    /* Bounds ignore other types. */
    nx_schema_t *s = compile("{\"minimum\":5}");
    ok(s, "\"1\"");
    nx_schema_free(s);
}

Test(jsonschema, multiple_of) {
    check("{\"multipleOf\":5}", "-10", "7", "", "multipleOf", "must be a multiple of 5");
    check("{\"multipleOf\":0.1}", "0.3", "0.35", "", "multipleOf", "must be a multiple of 0.1");
    check("{\"multipleOf\":0.01}", "19.99", "19.995", "", "multipleOf", "multiple of 0.01");
    check("{\"multipleOf\":2.5}", "10", "11", "", "multipleOf", "must be a multiple of 2.5");
    check("{\"multipleOf\":1e10}", "0", "0.5", "", "multipleOf", "multiple of 1e+10");
}

Test(jsonschema, string_length_counts_code_points) {
    nx_schema_t *s = compile("{\"minLength\":2,\"maxLength\":3}");
    ok(s, "\"ab\"");
    ok(s, "\"日本語\"");          /* 9 bytes, 3 code points */
    ok(s, "\"h\\u00e9\"");        /* é is 2 bytes */
    ok(s, "\"\\ud83d\\ude00x\""); /* 4-byte emoji + 1 */
    bad(s, "\"日本語!\"", "", "maxLength", "must be at most 3 characters long");
    bad(s, "\"\\ud83d\\ude00\"", "", "minLength", "must be at least 2 characters long");
    bad(s, "\"a\"", "", "minLength", "at least 2");
    nx_schema_free(s);
}

Test(jsonschema, pattern) {
    check("{\"pattern\":\"^[a-z]+$\"}", "\"abc\"", "\"abC\"", "", "pattern",
          "must match pattern ^[a-z]+$");
    /* Unanchored patterns search, as in ECMA-262. */
    check("{\"pattern\":\"b+\"}", "\"abbbc\"", "\"ac\"", "", "pattern", "must match pattern b+");
    nx_schema_t *s = compile("{\"pattern\":\"^\\\\d{3}-\\\\d{4}$\"}");
    ok(s, "\"555-1234\"");
    bad(s, "\"555-12a4\"", "", "pattern", "must match pattern ^\\d{3}-\\d{4}$");
    bad(s, "\"5555-1234\"", "", "pattern", "must match");
    nx_schema_free(s);
    s = compile("{\"pattern\":\"^\\\\w+\\\\s\\\\S+$\"}");
    ok(s, "\"snake_case1 x!\"");
    bad(s, "\"a-b c\"", "", "pattern", "must match");
    nx_schema_free(s);
    /* Classes mixing escapes with the characters POSIX places by position. */
    s = compile("{\"pattern\":\"^[\\\\d.\\\\-\\\\]^]+$\"}");
    ok(s, "\"1.2-3]^\"");
    bad(s, "\"1a\"", "", "pattern", "must match");
    nx_schema_free(s);
    s = compile("{\"pattern\":\"^[^\\\\s@]+@[^\\\\s@]+\\\\.[a-z]{2,}$\"}");
    ok(s, "\"me@example.org\"");
    bad(s, "\"me@example\"", "", "pattern", "must match");
    nx_schema_free(s);
    /* Non-capturing groups, lazy quantifiers, literal braces, an escaped slash. */
    s = compile("{\"pattern\":\"^(?:ab)+?\\\\/x{,2}$\"}");
    ok(s, "\"abab/x{,2}\"");
    bad(s, "\"aba/x{,2}\"", "", "pattern", "must match");
    nx_schema_free(s);
    /* ECMA's dot does not match a newline, and $ is the end of the whole string. */
    s = compile("{\"pattern\":\"^a.c$\"}");
    ok(s, "\"abc\"");
    bad(s, "\"a\\nc\"", "", "pattern", "must match");
    bad(s, "\"abc\\nabc\"", "", "pattern", "must match");
    nx_schema_free(s);
    /* Strings may hold NUL: the match covers the whole string, not up to the NUL. */
    s = compile("{\"pattern\":\"b$\"}");
    ok(s, "\"a\\u0000b\"");
    nx_schema_free(s);
    s = compile("{\"pattern\":\"^caf\\u00e9+$\"}");
    ok(s, "\"café\"");
    ok(s, "\"caféé\"");
    bad(s, "\"cafe\"", "", "pattern", "must match pattern ^café+$");
    nx_schema_free(s);
}

Test(jsonschema, unsupported_patterns_fail_at_compile) {
    bad_schema("{\"pattern\":\"^(?=a)\"}", "/pattern",
               "lookahead and lookbehind are not supported");
    bad_schema("{\"pattern\":\"(a)\\\\1\"}", "/pattern", "backreferences are not supported");
    bad_schema("{\"pattern\":\"\\\\bword\"}", "/pattern", "word boundaries");
    bad_schema("{\"pattern\":\"[\\\\D]\"}", "/pattern", "inside [...]");
    bad_schema("{\"pattern\":\"((a{100}){100}){100}\"}", "/pattern", "too complex");
    bad_schema("{\"pattern\":\"a{2000}\"}", "/pattern", "above 1000");
    bad_schema("{\"pattern\":\"(a\"}", "/pattern", "unbalanced (");
    bad_schema("{\"pattern\":\"*a\"}", "/pattern", "nothing to repeat");
    bad_schema("{\"pattern\":\"[z-a]\"}", "/pattern", "out of order");
    bad_schema("{\"pattern\":3}", "/pattern", "must be a string");
    bad_schema("{\"properties\":{\"p\":{\"patternProperties\":{\"(?!x)\":{}}}}}",
               "/properties/p/patternProperties/(?!x)", "lookahead");
    char big[NX_SCHEMA_MAX_PATTERN + 64];
    int n = snprintf(big, sizeof(big), "{\"pattern\":\"");
    memset(big + n, 'a', NX_SCHEMA_MAX_PATTERN + 1);
    strcpy(big + n + NX_SCHEMA_MAX_PATTERN + 1, "\"}");
    bad_schema(big, "/pattern", "longer than 1024 bytes");
}

Test(jsonschema, format_is_accepted_and_ignored) {
    nx_schema_t *s = compile("{\"type\":\"string\",\"format\":\"email\",\"default\":\"x\","
                             "\"title\":\"t\",\"x-unknown\":{\"type\":7}}");
    ok(s, "\"not an email\"");
    nx_schema_free(s);
}

Test(jsonschema, all_of) {
    nx_schema_t *s = compile("{\"allOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}");
    ok(s, "3");
    bad(s, "\"3\"", "", "type", "must be an integer");
    bad(s, "2", "", "minimum", "must be >= 3");
    nx_schema_free(s);
}

Test(jsonschema, any_of_lists_each_branch) {
    nx_schema_t *s = compile("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"},"
                             "{\"required\":[\"id\"]}]}");
    ok(s, "\"x\"");
    ok(s, "null");
    ok(s, "{\"id\":1}");
    bad(s, "{}", "", "anyOf",
        "must match at least one anyOf schema: #0 must be a string, got object; "
        "#1 must be null, got object; #2 at /id is required");
    nx_schema_free(s);
}

Test(jsonschema, one_of_needs_exactly_one) {
    nx_schema_t *s = compile("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":2}]}");
    ok(s, "1");   /* integer only */
    ok(s, "2.5"); /* minimum only */
    bad(s, "3", "", "oneOf", "must match exactly one oneOf schema, but matches #0 and #1");
    bad(s, "1.5", "", "oneOf",
        "but matches none: #0 must be an integer, got number; #1 must be >= 2");
    nx_schema_free(s);
}

Test(jsonschema, not ) {
    check("{\"not\":{\"type\":\"string\"}}", "1", "\"s\"", "", "not", "must not match");
}

Test(jsonschema, if_then_else) {
    nx_schema_t *s = compile("{\"if\":{\"properties\":{\"country\":{\"const\":\"US\"}}},"
                             "\"then\":{\"properties\":{\"zip\":{\"pattern\":\"^[0-9]{5}$\"}}},"
                             "\"else\":{\"properties\":{\"zip\":{\"pattern\":\"^[A-Z0-9 ]+$\"}}}}");
    ok(s, "{\"country\":\"US\",\"zip\":\"12345\"}");
    ok(s, "{\"country\":\"UK\",\"zip\":\"SW1A 1AA\"}");
    bad(s, "{\"country\":\"US\",\"zip\":\"SW1A 1AA\"}", "/zip", "pattern", "^[0-9]{5}$");
    bad(s, "{\"country\":\"UK\",\"zip\":\"sw1\"}", "/zip", "pattern", "^[A-Z0-9 ]+$");
    nx_schema_free(s);
}

Test(jsonschema, boolean_schemas) {
    nx_schema_t *s = compile("true");
    ok(s, "{\"anything\":[1,2]}");
    nx_schema_free(s);
    s = compile("false");
    bad(s, "null", "", "false", "is not allowed here");
    nx_schema_free(s);
    check("{\"properties\":{\"a\":true,\"b\":false}}", "{\"a\":1}", "{\"a\":1,\"b\":2}", "/b",
          "false", "is not allowed here");
}

Test(jsonschema, ref_to_defs) {
    nx_schema_t *s = compile("{\"$defs\":{\"pos\":{\"type\":\"integer\",\"minimum\":1}},"
                             "\"definitions\":{\"name\":{\"type\":\"string\"}},"
                             "\"properties\":{\"n\":{\"$ref\":\"#/$defs/pos\"},"
                             "\"s\":{\"$ref\":\"#/definitions/name\"}}}");
    ok(s, "{\"n\":3,\"s\":\"x\"}");
    bad(s, "{\"n\":0}", "/n", "minimum", "must be >= 1");
    bad(s, "{\"s\":0}", "/s", "type", "must be a string");
    nx_schema_free(s);
    /* Percent- and tilde-escaped names. */
    s = compile("{\"$defs\":{\"a b/c\":{\"type\":\"null\"}},\"$ref\":\"#/$defs/a%20b~1c\"}");
    ok(s, "null");
    bad(s, "1", "", "type", "must be null");
    nx_schema_free(s);
}

Test(jsonschema, recursive_tree) {
    nx_schema_t *s =
        compile("{\"$ref\":\"#/$defs/node\",\"$defs\":{\"node\":{\"type\":\"object\","
                "\"required\":[\"value\"],\"properties\":{\"value\":{\"type\":\"integer\"},"
                "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},"
                "\"additionalProperties\":false}}}");
    ok(s, "{\"value\":1,\"children\":[{\"value\":2},{\"value\":3,\"children\":[{\"value\":4}]}]}");
    bad(s,
        "{\"value\":1,\"children\":[{\"value\":2,\"children\":[{\"value\":3},{\"value\":\"x\"}]}]}",
        "/children/0/children/1/value", "type", "must be an integer");
    bad(s, "{\"value\":1,\"children\":[{}]}", "/children/0/value", "required", "is required");
    nx_schema_free(s);
    /* "#" refers to the root. */
    s = compile("{\"type\":[\"array\",\"integer\"],\"items\":{\"$ref\":\"#\"}}");
    ok(s, "[1,[2,[3,[]]]]");
    bad(s, "[1,[2,[\"3\"]]]", "/1/1/0", "type", "must be an integer or an array");
    nx_schema_free(s);
}

Test(jsonschema, hostile_refs_hit_a_bound) {
    nx_schema_error_t err;
    /* A reference to itself never reaches the instance: the recursion bound stops it. */
    nx_schema_t *s = compile("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}");
    cr_assert_eq(validate(s, "1", &err), NX_ELIMIT);
    cr_assert(strstr(err.message, "deeper than") != NULL, "%s", err.message);
    nx_schema_free(s);
    /* Each level doubles the work: 2^40 evaluations unless the step budget stops it. */
    char text[4096];
    size_t off = (size_t)snprintf(text, sizeof(text), "{\"$defs\":{\"d0\":{\"type\":\"integer\"}");
    for (int i = 1; i <= 40; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off,
                                ",\"d%d\":{\"anyOf\":[{\"$ref\":\"#/$defs/d%d\"},"
                                "{\"$ref\":\"#/$defs/d%d\"}]}",
                                i, i - 1, i - 1);
    snprintf(text + off, sizeof(text) - off, "},\"$ref\":\"#/$defs/d40\"}");
    s = compile(text);
    ok(s, "1"); /* anyOf stops at the first branch that passes */
    cr_assert_eq(validate(s, "\"x\"", &err), NX_ELIMIT);
    cr_assert(strstr(err.message, "validation steps") != NULL, "%s", err.message);
    nx_schema_free(s);
}

Test(jsonschema, deep_instances_hit_a_bound) {
    nx_schema_t *s = compile("{\"items\":{\"$ref\":\"#\"}}");
    char deep[512];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    nx_schema_error_t err;
    cr_assert_eq(validate(s, deep, &err), NX_ELIMIT);
    cr_assert(strstr(err.message, "nested deeper than 64") != NULL, "%s", err.message);
    deep[40] = '\0';
    memset(deep + 20, ']', 20);
    ok(s, deep);
    nx_schema_free(s);
}

Test(jsonschema, bad_schemas_name_their_location) {
    bad_schema("{\"properties\":{\"age\":{\"minimum\":\"1\"}}}", "/properties/age/minimum",
               "/properties/age/minimum must be a number");
    bad_schema("{\"type\":\"strin\"}", "/type", "unknown type \"strin\"");
    bad_schema("{\"type\":[]}", "/type", "non-empty array");
    bad_schema("{\"required\":\"name\"}", "/required", "must be an array of strings");
    bad_schema("{\"required\":[\"a\",1]}", "/required", "must be an array of strings");
    bad_schema("{\"items\":{\"minLength\":-1}}", "/items/minLength", "non-negative integer");
    bad_schema("{\"maxItems\":1.5}", "/maxItems", "non-negative integer");
    bad_schema("{\"multipleOf\":0}", "/multipleOf", "greater than 0");
    bad_schema("{\"anyOf\":[]}", "/anyOf", "non-empty array of schemas");
    bad_schema("{\"allOf\":[{},3]}", "/allOf/1", "must be an object or a boolean");
    bad_schema("{\"uniqueItems\":1}", "/uniqueItems", "must be a boolean");
    bad_schema("{\"enum\":{}}", "/enum", "must be an array");
    bad_schema("{\"properties\":[]}", "/properties", "must be an object of schemas");
    bad_schema("{\"properties\":{\"a\":{\"$ref\":\"#/$defs/missing\"}}}", "/properties/a/$ref",
               "\"#/$defs/missing\" does not resolve");
    bad_schema("{\"$ref\":\"https://example.com/s.json\"}", "/$ref", "is not supported");
    bad_schema("{\"$ref\":\"#/properties/a\",\"properties\":{\"a\":{}}}", "/$ref",
               "is not supported");
    bad_schema("{\"$defs\":{\"x\":{\"maximum\":null}}}", "/$defs/x/maximum", "must be a number");
    bad_schema("{\"$defs\":{\"x\":{\"minimum\":{}}},\"$ref\":\"#/$defs/x\"}", "/$defs/x/minimum",
               "must be a number");
    bad_schema("42", "", "schema must be an object or a boolean");
    nx_schema_error_t err;
    cr_assert_null(nx_schema_compile(NULL, &err));
    cr_assert_str_eq(err.message, "schema must be an object or a boolean");
    json_t *j = json_string("s");
    cr_assert_null(nx_schema_compile(j, NULL), "err may be NULL");
    json_decref(j);
}

Test(jsonschema, schema_nesting_is_bounded) {
    char text[2048];
    size_t off = 0;
    for (int i = 0; i < 70; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "{\"items\":");
    off += (size_t)snprintf(text + off, sizeof(text) - off, "true");
    for (int i = 0; i < 70; i++)
        text[off++] = '}';
    text[off] = '\0';
    json_t *j = parse(text);
    nx_schema_error_t err;
    cr_assert_null(nx_schema_compile(j, &err));
    cr_assert(strstr(err.message, "deeper than 64 levels") != NULL, "%s", err.message);
    json_decref(j);
}

Test(jsonschema, compiled_schema_owns_its_copy) {
    json_t *j = parse("{\"properties\":{\"a\":{\"enum\":[\"x\"]}}}");
    nx_schema_t *s = nx_schema_compile(j, NULL);
    cr_assert_not_null(s);
    json_object_set_new(json_object_get(j, "properties"), "a", json_true()); /* caller edits */
    json_decref(j);
    ok(s, "{\"a\":\"x\"}");
    bad(s, "{\"a\":\"y\"}", "/a", "enum", "must be one of: \"x\"");
    nx_schema_free(s);
    nx_schema_free(NULL);
}

Test(jsonschema, validate_all_collects_in_order_up_to_max) {
    nx_schema_t *s = compile("{\"type\":\"object\",\"required\":[\"id\"],\"properties\":"
                             "{\"id\":{},\"n\":{\"type\":\"integer\"},\"s\":{\"maxLength\":1}},"
                             "\"additionalProperties\":false}");
    json_t *j = parse("{\"z\":1,\"s\":\"long\",\"n\":\"x\",\"y\":2}");
    nx_schema_error_t errs[8];
    size_t count;
    cr_assert_eq(nx_schema_validate_all(s, j, errs, 8, &count), NX_EPROTO);
    cr_assert_eq(count, 5);
    const char *paths[] = {"/n", "/s", "/id", "", ""};
    const char *keywords[] = {"type", "maxLength", "required", "additionalProperties",
                              "additionalProperties"};
    for (size_t i = 0; i < count; i++) {
        cr_assert_str_eq(errs[i].path, paths[i], "error %zu", i);
        cr_assert_str_eq(errs[i].keyword, keywords[i], "error %zu", i);
    }
    cr_assert(strstr(errs[3].message, "\"y\"") != NULL && strstr(errs[4].message, "\"z\"") != NULL,
              "sorted by name");
    cr_assert_eq(nx_schema_validate_all(s, j, errs, 2, &count), NX_EPROTO);
    cr_assert_eq(count, 2);
    cr_assert_str_eq(errs[1].path, "/s");
    cr_assert_eq(nx_schema_validate(s, j, NULL), NX_EPROTO, "err may be NULL");
    json_decref(j);
    j = parse("{\"id\":1}");
    cr_assert_eq(nx_schema_validate_all(s, j, errs, 8, &count), 0);
    cr_assert_eq(count, 0);
    json_decref(j);
    nx_schema_free(s);
}

Test(jsonschema, errors_are_truncated_to_valid_utf8) {
    nx_schema_t *s = compile("{\"additionalProperties\":{\"type\":\"string\"}}");
    char text[2048];
    size_t off = (size_t)snprintf(text, sizeof(text), "{\"");
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "é");
    snprintf(text + off, sizeof(text) - off, "\":1}");
    nx_schema_error_t err;
    cr_assert_eq(validate(s, text, &err), NX_EPROTO);
    cr_assert_lt(strlen(err.path), sizeof(err.path));
    cr_assert(strstr(err.path, "...") != NULL, "%s", err.path);
    json_t *as_json = json_string(err.path); /* NULL if the cut split a character */
    cr_assert_not_null(as_json);
    json_decref(as_json);
    nx_schema_free(s);
}

Test(jsonschema, realistic_mcp_tool_input_schema) {
    nx_schema_t *s =
        compile("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
                "\"properties\":{"
                "\"query\":{\"type\":\"string\",\"minLength\":1,\"description\":\"search text\"},"
                "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":10},"
                "\"sort\":{\"type\":\"string\",\"enum\":[\"relevance\",\"date\"]},"
                "\"filters\":{\"type\":\"array\",\"maxItems\":5,\"items\":{\"type\":\"object\","
                "\"properties\":{\"field\":{\"type\":\"string\",\"pattern\":\"^[a-z_]+$\"},"
                "\"op\":{\"enum\":[\"eq\",\"lt\",\"gt\"]},"
                "\"value\":{\"type\":[\"string\",\"number\",\"boolean\"]}},"
                "\"required\":[\"field\",\"op\",\"value\"],\"additionalProperties\":false}}},"
                "\"required\":[\"query\"],\"additionalProperties\":false}");
    ok(s, "{\"query\":\"nexus\"}");
    ok(s, "{\"query\":\"io_uring\",\"limit\":20,\"sort\":\"date\",\"filters\":["
          "{\"field\":\"repo_name\",\"op\":\"eq\",\"value\":\"nexus\"},"
          "{\"field\":\"stars\",\"op\":\"gt\",\"value\":100}]}");
    bad(s, "{}", "/query", "required", "is required");
    bad(s, "{\"query\":\"\"}", "/query", "minLength", "at least 1 character");
    bad(s, "{\"query\":\"q\",\"limit\":0}", "/limit", "minimum", "must be >= 1");
    bad(s, "{\"query\":\"q\",\"limit\":\"10\"}", "/limit", "type",
        "must be an integer, got string");
    bad(s, "{\"query\":\"q\",\"sort\":\"stars\"}", "/sort", "enum",
        "must be one of: \"relevance\", \"date\"");
    bad(s,
        "{\"query\":\"q\",\"filters\":[{\"field\":\"a\",\"op\":\"eq\",\"value\":1},"
        "{\"field\":\"Bad\",\"op\":\"eq\",\"value\":1}]}",
        "/filters/1/field", "pattern", "must match pattern ^[a-z_]+$");
    bad(s, "{\"query\":\"q\",\"filters\":[{\"field\":\"a\",\"op\":\"eq\"}]}", "/filters/0/value",
        "required", "is required");
    bad(s, "{\"query\":\"q\",\"filters\":[{\"field\":\"a\",\"op\":\"eq\",\"value\":null}]}",
        "/filters/0/value", "type", "must be a string, a number or a boolean, got null");
    bad(s, "{\"query\":\"q\",\"verbose\":true}", "", "additionalProperties",
        "unexpected property \"verbose\"");
    nx_schema_free(s);
}

/* Expressions of workflow definitions: `${{ … }}` inside YAML strings, compiled once at load
 * and evaluated against a scope for every execution.
 *
 * A template is a string (valid UTF-8, at most 64 KiB). When the whole string (trimmed) is one
 * `${{ expr }}` the template is whole-value: it evaluates to expr's JSON value with its own type
 * (number, object, ...). When `${{ … }}` appears inside other text, each one is evaluated and
 * interpolated (strings as they are, null as "", booleans as true/false, numbers and everything
 * else as compact JSON as jansson prints it, members in insertion order) and the result is a
 * string. A string without `${{` is a literal. `$${{` is an escaped literal `${{`. An
 * expression ends at the first `}}` outside its strings and braces: `${{ {a: {b: 1}} }}` works.
 *
 * The expression language:
 *   literals     null true false, numbers (JSON syntax), 'single' or "double" quoted strings
 *                (backslash escapes \\ \' \" \n \t), [a, b] arrays, {"k": v} / {k: v} objects
 *   paths        input.a.b, steps.fetch.result.items[0].name, steps.x['odd key'], item, index,
 *                session; a path that does not exist is null (never an error). After '.', a
 *                name may hold '-' and start with a digit (steps.fetch-2.result: there is no
 *                binary minus). [i] takes any expression: an integer indexes an array (no
 *                counting from the end: out of range is null), a string names an object member,
 *                anything else is null. Paths apply to any value: (x).a, json(s)[0].
 *   operators    == != < <= > >= (one level, left to right; < <= > >= take two numbers, compared
 *                exactly even between integers and reals, or two strings, compared by bytes,
 *                and are a run-time error on anything else; == is deep JSON equality with
 *                1 == 1.0), && || (short-circuit, yield the deciding operand like JS), ! (not),
 *                unary -, + (numbers add: an integer unless it overflows, then a real; if either
 *                side is a string, concatenation with the other side as interpolated; other
 *                types are a run-time error), and parentheses; precedence:
 *                ! - (unary) > + > comparisons > && > ||
 *   functions    length(x)      characters (not bytes) of a string, items of an array, keys of
 *                               an object; 0 for null
 *                default(x, y)  x unless x is null (then y; y is evaluated only then)
 *                contains(h, n) a string contains a substring, an array contains an equal item,
 *                               an object has the key (n must be a string for strings and
 *                               objects); false for null
 *                join(a, sep)   the items of an array as interpolated strings joined with sep
 *                               (a string, default ","); "" for null
 *                json(x)        x as compact JSON text; json(s) of a string parses it as JSON
 *                               when it is valid JSON, else gives the string itself
 *                Other types for these arguments are run-time errors.
 * Truthiness (if:, &&, ||, !): false, null, 0, "", [] and {} are false; everything else true.
 */
#ifndef NX_ENGINE_EXPR_H
#define NX_ENGINE_EXPR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct nx_expr nx_expr_t;

/* Why compiling failed: a message and the byte offset in the text where the problem is. */
typedef struct nx_expr_error {
    char message[200];
    size_t offset;
} nx_expr_error_t;

/** Compiles the template <text> (<len> bytes, need not be NUL-terminated). Returns 0 and the
 *  template in <*out>, or -EINVAL with <*out> NULL and <err> filled (unterminated `${{`, bad
 *  syntax, unknown function, wrong argument count, nesting deeper than 64, text longer than
 *  64 KiB, invalid UTF-8). The offset is that of the offending token; for an unterminated or
 *  empty `${{ }}` it is that of its `${{`. <err> may be NULL. */
int nx_expr_compile(const char *text, size_t len, nx_expr_t **out, nx_expr_error_t *err);
/** Compiles <text> as a bare expression (no `${{ }}` needed, as conditions are written:
 *  `if: input.n > 3`); a text that is one `${{ expr }}` is accepted too, but text around it
 *  (`${{ a }} == 1`) is an error rather than a string that is always true. */
int nx_expr_compile_bare(const char *text, size_t len, nx_expr_t **out, nx_expr_error_t *err);
/** Frees <e>. NULL-safe. */
void nx_expr_free(nx_expr_t *e);

/** True when <e> is a literal string with no expression in it. */
bool nx_expr_is_literal(const nx_expr_t *e);
/** Evaluates <e> in <scope> (an object whose keys are the path roots: input, steps, item,
 *  index, session; borrowed; NULL = every path is null). Returns a new reference, or NULL with
 *  a message in <err> (may be NULL) for run-time errors (a function given the wrong types, a
 *  number overflow); missing paths are null, not errors. The result may be a value of <scope>
 *  or of the template itself (a path returns the scope's value, not a copy): treat it as
 *  read-only and json_deep_copy it before changing it. Thread-safe: <e> is not modified. */
json_t *nx_expr_eval(const nx_expr_t *e, const json_t *scope, char *err, size_t errlen);
/** The truthiness of <v> as described above (NULL is false). */
bool nx_expr_truthy(const json_t *v);

/* Called for every path rooted at steps.<id> in an expression: <id> is the step id. */
typedef void (*nx_expr_ref_fn)(void *arg, const char *step_id);
/** Calls <fn> (may be NULL) for each step id <e> refers to, once per occurrence in text order
 *  (for definition checks: unknown ids, references to steps that cannot have run yet): the
 *  name after steps. or in steps['...']. A computed id (steps[input.k]) reports none, only
 *  the roots. Also reports the roots used: returns a bit set of NX_EXPR_ROOT_* for the roots
 *  the expression reads (null, true and false are literals, not roots). */
unsigned nx_expr_refs(const nx_expr_t *e, nx_expr_ref_fn fn, void *arg);
enum {
    NX_EXPR_ROOT_INPUT = 1u << 0,
    NX_EXPR_ROOT_STEPS = 1u << 1,
    NX_EXPR_ROOT_ITEM = 1u << 2, /* item or index */
    NX_EXPR_ROOT_SESSION = 1u << 3,
    NX_EXPR_ROOT_OTHER = 1u << 4, /* a root that is none of these (a definition error) */
};

/* A JSON value whose strings (at any depth, keys excluded) are templates: the `with:`
 * arguments, the `output:` mapping, headers, query and body of a REST call. */
typedef struct nx_jtemplate nx_jtemplate_t;
/** Compiles every string inside <value> (borrowed, not kept). Object keys are not templates;
 *  numbers, booleans and null stay as they are. On error returns -EINVAL with <err> and, in
 *  <where> (may be NULL), a JSON-pointer-like path to the bad string inside <value> ("/a/0/b",
 *  "" for <value> itself; ~ and / in keys escaped as ~0 and ~1). */
int nx_jtemplate_compile(const json_t *value, nx_jtemplate_t **out, nx_expr_error_t *err,
                         char *where, size_t wherelen);
/** Evaluates <t> in <scope>: a new value of the same shape (object members in their order)
 *  with every template replaced by its value; NULL with <err> on a run-time error. Parts
 *  without any expression are built once at compile and shared by every result (an all-literal
 *  template returns the same value each time), so the result is read-only as above. */
json_t *nx_jtemplate_eval(const nx_jtemplate_t *t, const json_t *scope, char *err, size_t errlen);
/** Calls <fn> for each step id any template in <t> refers to; returns the roots as above. */
unsigned nx_jtemplate_refs(const nx_jtemplate_t *t, nx_expr_ref_fn fn, void *arg);
/** Frees <t>. NULL-safe. */
void nx_jtemplate_free(nx_jtemplate_t *t);

#endif

/* json: a small JSON reader (into a tree) and writer helpers, enough for
 * safetensors headers and config files.
 *
 * Reading: RFC 8259 JSON. Strings are unescaped to UTF-8 (\uXXXX with
 * surrogate pairs); "\u0000" is rejected because values are C strings.
 * Numbers written as integers (no '.', 'e' or 'E') that fit int64 are also
 * kept exactly in .i with .isint = 1. Object members keep file order and
 * duplicate keys. Nesting deeper than RT_JSON_MAXDEPTH is rejected.
 * Writing: a growable string buffer and a string escaper; and FNV-1a,
 * the hash of bytes ddpmc's keys and fingerprints use. */
#ifndef DDPMC_RUNTIME_JSON_H
#define DDPMC_RUNTIME_JSON_H

#include <stddef.h>
#include <stdint.h>

#define RT_JSON_MAXDEPTH 64

typedef enum { RT_JNULL, RT_JBOOL, RT_JNUM, RT_JSTR, RT_JARR, RT_JOBJ } rt_jtype;

typedef struct rt_json {
	rt_jtype type;
	int b;                  /* RT_JBOOL */
	double num;             /* RT_JNUM */
	int isint;              /* RT_JNUM written as an integer that fits int64 */
	int64_t i;              /* its exact value when isint */
	char *str;              /* RT_JSTR, NUL-terminated UTF-8 */
	struct rt_json *kids;   /* RT_JARR, RT_JOBJ: n values */
	char **keys;            /* RT_JOBJ: n keys, parallel to kids */
	int n;
} rt_json;

/* Parses text[0..len) (one value, surrounded by optional whitespace) into
 * *out. On error returns RT_ERR, leaves *out cleared and writes
 * "at byte N: what was wrong" into err. */
int rt_json_parse(const char *text, size_t len, rt_json *out,
                  char *err, size_t errlen);
void rt_json_free(rt_json *j);
/* The file at path, parsed as by rt_json_parse; err starts with path. */
#define RT_JSON_MAX_FILE (16 << 20)
int rt_json_read_file(const char *path, rt_json *out, char *err, size_t errlen);
/* First member named key of an object, or NULL (also for non-objects). */
const rt_json *rt_json_get(const rt_json *obj, const char *key);
const char *rt_json_type_name(rt_jtype t);

/* Growable NUL-terminated text. After an allocation failure .oom is set,
 * later appends do nothing, and the caller reports it once at the end. */
typedef struct {
	char *p;
	size_t len, cap;
	int oom;
} rt_strbuf;

void rt_sb_put(rt_strbuf *b, const char *s, size_t n);
void rt_sb_puts(rt_strbuf *b, const char *s);
void rt_sb_printf(rt_strbuf *b, const char *fmt, ...);
/* Appends s as a quoted JSON string: escapes '"', '\\' and control
 * characters; other bytes (UTF-8 included) pass through. */
void rt_sb_json_string(rt_strbuf *b, const char *s);
/* v as JSON: the shortest form that reads back as v, ".0" added to an
 * integral value so that a float stays a float. */
void rt_sb_json_number(rt_strbuf *b, double v);
/* j as compact JSON text (numbers written as integers when they were). */
void rt_json_write(rt_strbuf *b, const rt_json *j);
void rt_sb_free(rt_strbuf *b);
/* text[0..len) into the file at path (a new file when exclusive, else
 * created or truncated), flushed to disk. 0, or an errno value with the
 * file removed. */
int rt_write_file(const char *path, const char *text, size_t len, int exclusive);

/* FNV-1a, 64 bits, of p[0..n) continuing from h (start: RT_FNV1A_START). */
#define RT_FNV1A_START 14695981039346656037ull
uint64_t rt_fnv1a(uint64_t h, const void *p, size_t n);

#endif

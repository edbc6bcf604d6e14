/* json: recursive-descent JSON reader into an rt_json tree, and the string
 * buffer used to write JSON. See json.h for the accepted language. */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor.h"  /* RT_OK, RT_ERR */

typedef struct {
	const char *start, *p, *end;
	char *err;
	size_t errlen;
	int depth;
} rt_jparser;

static int rt_jvalue(rt_jparser *ps, rt_json *out);

/* Records the first error only, with the byte offset where it was found. */
static int rt_jerr(rt_jparser *ps, const char *what)
{
	if (ps->err && ps->errlen && !ps->err[0])
		snprintf(ps->err, ps->errlen, "at byte %zu: %s",
		         (size_t)(ps->p - ps->start), what);
	return RT_ERR;
}

static void rt_jskip_ws(rt_jparser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
	                           *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

/* Consumes the literal word (true, false, null) at ps->p. */
static int rt_jword(rt_jparser *ps, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
		return rt_jerr(ps, "invalid literal");
	ps->p += n;
	return RT_OK;
}

/* ---- numbers ---- */

static int rt_jdigits(rt_jparser *ps)
{
	const char *s = ps->p;
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
		ps->p++;
	return ps->p > s ? RT_OK : rt_jerr(ps, "expected a digit");
}

/* Validates the RFC 8259 number grammar, then converts the token with
 * strtod / strtoll from a NUL-terminated copy. */
static int rt_jnumber(rt_jparser *ps, rt_json *out)
{
	const char *s = ps->p;
	int isint = 1;
	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p < ps->end && *ps->p == '0')
		ps->p++;
	else if (rt_jdigits(ps))
		return RT_ERR;
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		isint = 0;
		if (rt_jdigits(ps))
			return RT_ERR;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		isint = 0;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (rt_jdigits(ps))
			return RT_ERR;
	}
	char tok[64];
	size_t n = (size_t)(ps->p - s);
	if (n >= sizeof tok)
		return rt_jerr(ps, "number too long");
	memcpy(tok, s, n);
	tok[n] = 0;
	out->type = RT_JNUM;
	out->num = strtod(tok, NULL);
	errno = 0;
	long long v = strtoll(tok, NULL, 10);
	out->isint = isint && errno != ERANGE;
	out->i = out->isint ? (int64_t)v : 0;
	return RT_OK;
}

/* ---- strings ---- */

static int rt_jhex4(rt_jparser *ps, uint32_t *out)
{
	*out = 0;
	if (ps->end - ps->p < 4)
		return rt_jerr(ps, "truncated \\u escape");
	for (int k = 0; k < 4; k++) {
		char c = *ps->p++;
		int d = c >= '0' && c <= '9' ? c - '0' :
		        c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		        c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return rt_jerr(ps, "bad hex digit in \\u escape");
		*out = *out << 4 | (uint32_t)d;
	}
	return RT_OK;
}

/* Reads the code point of a \u escape (after "\u"), joining a surrogate
 * pair written as two escapes. */
static int rt_jcodepoint(rt_jparser *ps, uint32_t *cp)
{
	uint32_t lo;
	if (rt_jhex4(ps, cp))
		return RT_ERR;
	if (*cp == 0)
		return rt_jerr(ps, "\\u0000 is not supported in strings");
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return rt_jerr(ps, "unpaired low surrogate");
	if (*cp < 0xd800 || *cp > 0xdbff)
		return RT_OK;
	if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
		return rt_jerr(ps, "unpaired high surrogate");
	ps->p += 2;
	if (rt_jhex4(ps, &lo))
		return RT_ERR;
	if (lo < 0xdc00 || lo > 0xdfff)
		return rt_jerr(ps, "unpaired high surrogate");
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return RT_OK;
}

/* Writes cp as UTF-8 to d; returns the byte count (1..4). */
static int rt_utf8(uint32_t cp, char *d)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xc0 | cp >> 6);
		d[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xe0 | cp >> 12);
		d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		d[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | cp >> 18);
	d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	d[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One escape after the backslash; appends its bytes at *d. */
static int rt_jescape(rt_jparser *ps, char **d)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	if (ps->p >= ps->end)
		return rt_jerr(ps, "unterminated string");
	char c = *ps->p++;
	const char *k = c ? strchr(from, c) : NULL;
	if (k) {
		*(*d)++ = to[k - from];
		return RT_OK;
	}
	if (c != 'u') {
		ps->p--;
		return rt_jerr(ps, "invalid escape in string");
	}
	uint32_t cp;
	if (rt_jcodepoint(ps, &cp))
		return RT_ERR;
	*d += rt_utf8(cp, *d);
	return RT_OK;
}

/* Length of the string body starting at p: up to the closing quote that
 * is not escaped, or to end when there is none. */
static size_t rt_jspan(const char *p, const char *end)
{
	const char *s = p;
	while (p < end && *p != '"')
		p += *p == '\\' && p + 1 < end ? 2 : 1;
	return (size_t)(p - s);
}

/* Parses a string at ps->p (which is '"') into a malloc'd C string. The
 * decoded text is never longer than its escaped form. */
static int rt_jstring(rt_jparser *ps, char **out)
{
	ps->p++;
	char *buf = malloc(rt_jspan(ps->p, ps->end) + 1);
	char *d = buf;
	if (!buf)
		return rt_jerr(ps, "out of memory");
	for (;;) {
		if (ps->p >= ps->end) {
			free(buf);
			return rt_jerr(ps, "unterminated string");
		}
		unsigned char c = (unsigned char)*ps->p;
		if (c == '"')
			break;
		if (c < 0x20) {
			free(buf);
			return rt_jerr(ps, "control character in string");
		}
		ps->p++;
		if (c != '\\')
			*d++ = (char)c;
		else if (rt_jescape(ps, &d)) {
			free(buf);
			return RT_ERR;
		}
	}
	ps->p++;
	*d = 0;
	*out = buf;
	return RT_OK;
}

/* ---- arrays and objects ---- */

/* Appends a fresh null value (and key slot, for objects) to j. The arrays
 * hold the next power of two of n elements, doubled when n reaches one,
 * so that n values cost O(n) copies. */
static rt_json *rt_jpush(rt_json *j, char *key)
{
	int full = (j->n & (j->n - 1)) == 0;
	size_t cap = j->n ? 2 * (size_t)j->n : 1;
	if (full) {
		rt_json *kids = realloc(j->kids, cap * sizeof *kids);
		if (!kids)
			return NULL;
		j->kids = kids;
	}
	if (j->type == RT_JOBJ) {
		char **keys = full ? realloc(j->keys, cap * sizeof *keys) : j->keys;
		if (!keys)
			return NULL;
		j->keys = keys;
		keys[j->n] = key;
	}
	memset(&j->kids[j->n], 0, sizeof *j->kids);
	return &j->kids[j->n++];
}

/* Consumes sep (after whitespace) or reports what was expected. */
static int rt_jexpect(rt_jparser *ps, char sep, const char *what)
{
	rt_jskip_ws(ps);
	if (ps->p >= ps->end || *ps->p != sep)
		return rt_jerr(ps, what);
	ps->p++;
	return RT_OK;
}

/* One object member "key": value, appended to obj. */
static int rt_jmember(rt_jparser *ps, rt_json *obj)
{
	char *key;
	rt_jskip_ws(ps);
	if (ps->p >= ps->end || *ps->p != '"')
		return rt_jerr(ps, "expected a string key");
	if (rt_jstring(ps, &key))
		return RT_ERR;
	rt_json *v = rt_jpush(obj, key);
	if (!v) {
		free(key);
		return rt_jerr(ps, "out of memory");
	}
	if (rt_jexpect(ps, ':', "expected ':' after object key"))
		return RT_ERR;
	return rt_jvalue(ps, v);
}

/* Array or object at ps->p ('[' or '{'); members separated by ','. */
static int rt_jcompound(rt_jparser *ps, rt_json *out, rt_jtype type)
{
	char close = type == RT_JARR ? ']' : '}';
	out->type = type;
	if (++ps->depth > RT_JSON_MAXDEPTH)
		return rt_jerr(ps, "nesting too deep");
	ps->p++;
	rt_jskip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return RT_OK;
	}
	for (;;) {
		rt_json *v = type == RT_JARR ? rt_jpush(out, NULL) : NULL;
		if (type == RT_JARR && !v)
			return rt_jerr(ps, "out of memory");
		if (v ? rt_jvalue(ps, v) : rt_jmember(ps, out))
			return RT_ERR;
		rt_jskip_ws(ps);
		if (ps->p < ps->end && *ps->p == close)
			break;
		if (rt_jexpect(ps, ',', type == RT_JARR ? "expected ',' or ']'"
		                                         : "expected ',' or '}'"))
			return RT_ERR;
	}
	ps->p++;
	ps->depth--;
	return RT_OK;
}

static int rt_jvalue(rt_jparser *ps, rt_json *out)
{
	rt_jskip_ws(ps);
	if (ps->p >= ps->end)
		return rt_jerr(ps, "unexpected end of input");
	switch (*ps->p) {
	case '{': return rt_jcompound(ps, out, RT_JOBJ);
	case '[': return rt_jcompound(ps, out, RT_JARR);
	case '"': out->type = RT_JSTR; return rt_jstring(ps, &out->str);
	case 't': out->type = RT_JBOOL; out->b = 1; return rt_jword(ps, "true");
	case 'f': out->type = RT_JBOOL; return rt_jword(ps, "false");
	case 'n': return rt_jword(ps, "null");
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return rt_jnumber(ps, out);
		return rt_jerr(ps, "unexpected character");
	}
}

int rt_json_parse(const char *text, size_t len, rt_json *out,
                  char *err, size_t errlen)
{
	rt_jparser ps = {text, text, text + len, err, errlen, 0};
	if (err && errlen)
		err[0] = 0;
	memset(out, 0, sizeof *out);
	int rc = rt_jvalue(&ps, out);
	if (rc == RT_OK) {
		rt_jskip_ws(&ps);
		if (ps.p != ps.end)
			rc = rt_jerr(&ps, "trailing characters after the value");
	}
	if (rc != RT_OK)
		rt_json_free(out);
	return rc;
}

void rt_json_free(rt_json *j)
{
	for (int k = 0; k < j->n; k++) {
		rt_json_free(&j->kids[k]);
		if (j->keys)
			free(j->keys[k]);
	}
	free(j->kids);
	free(j->keys);
	free(j->str);
	memset(j, 0, sizeof *j);
}

const rt_json *rt_json_get(const rt_json *obj, const char *key)
{
	if (obj->type != RT_JOBJ)
		return NULL;
	for (int k = 0; k < obj->n; k++)
		if (strcmp(obj->keys[k], key) == 0)
			return &obj->kids[k];
	return NULL;
}

const char *rt_json_type_name(rt_jtype t)
{
	static const char *names[] = {"null", "boolean", "number", "string",
	                              "array", "object"};
	return (unsigned)t <= RT_JOBJ ? names[t] : "?";
}

/* ---- writing ---- */

static int rt_sb_reserve(rt_strbuf *b, size_t extra)
{
	if (b->oom)
		return RT_ERR;
	if (b->len + extra + 1 <= b->cap)
		return RT_OK;
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + extra + 1)
		ncap *= 2;
	char *np = realloc(b->p, ncap);
	if (!np) {
		b->oom = 1;
		return RT_ERR;
	}
	b->p = np;
	b->cap = ncap;
	return RT_OK;
}

void rt_sb_put(rt_strbuf *b, const char *s, size_t n)
{
	if (rt_sb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void rt_sb_puts(rt_strbuf *b, const char *s)
{
	rt_sb_put(b, s, strlen(s));
}

void rt_sb_printf(rt_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || rt_sb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void rt_sb_json_string(rt_strbuf *b, const char *s)
{
	rt_sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rt_sb_printf(b, "\\%c", c);
		else if (c < 0x20)
			rt_sb_printf(b, "\\u%04x", c);
		else
			rt_sb_put(b, s, 1);
	}
	rt_sb_put(b, "\"", 1);
}

/* The whole file as one JSON value; a file over RT_JSON_MAX_FILE bytes is
 * refused before it is read (configs are a few KB). */
int rt_json_read_file(const char *path, rt_json *out, char *err, size_t errlen)
{
	char why[256];
	memset(out, 0, sizeof *out);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return RT_ERR;
	}
	char *text = malloc(RT_JSON_MAX_FILE + 1);
	size_t n = text ? fread(text, 1, RT_JSON_MAX_FILE + 1, f) : 0;
	int bad = ferror(f);
	fclose(f);
	int rc = RT_ERR;
	if (!text)
		snprintf(err, errlen, "%s: out of memory", path);
	else if (bad)
		snprintf(err, errlen, "%s: cannot read", path);
	else if (n > RT_JSON_MAX_FILE)
		snprintf(err, errlen, "%s: larger than %d bytes: not a config file", path,
		         RT_JSON_MAX_FILE);
	else if (rt_json_parse(text, n, out, why, sizeof why) != RT_OK)
		snprintf(err, errlen, "%s: not JSON: %s", path, why);
	else
		rc = RT_OK;
	free(text);
	return rc;
}

/* The shortest %g form that reads back as v (as Python's repr does); a
 * float stays a float ("1.0"). NaN and infinities are not JSON; they are
 * written as Python's json writes them. */
void rt_sb_json_number(rt_strbuf *b, double v)
{
	char s[40];
	if (!isfinite(v)) {
		rt_sb_puts(b, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	rt_sb_puts(b, s);
	if (!strpbrk(s, ".eEn"))
		rt_sb_puts(b, ".0");
}

void rt_json_write(rt_strbuf *b, const rt_json *j)
{
	switch (j->type) {
	case RT_JNULL: rt_sb_puts(b, "null"); break;
	case RT_JBOOL: rt_sb_puts(b, j->b ? "true" : "false"); break;
	case RT_JNUM:
		if (j->isint)
			rt_sb_printf(b, "%lld", (long long)j->i);
		else
			rt_sb_printf(b, "%.17g", isfinite(j->num) ? j->num : 0.0);
		break;
	case RT_JSTR: rt_sb_json_string(b, j->str); break;
	case RT_JARR:
	case RT_JOBJ:
		rt_sb_puts(b, j->type == RT_JARR ? "[" : "{");
		for (int i = 0; i < j->n; i++) {
			if (i)
				rt_sb_puts(b, ", ");
			if (j->type == RT_JOBJ) {
				rt_sb_json_string(b, j->keys[i]);
				rt_sb_puts(b, ": ");
			}
			rt_json_write(b, &j->kids[i]);
		}
		rt_sb_puts(b, j->type == RT_JARR ? "]" : "}");
		break;
	}
}

int rt_write_file(const char *path, const char *text, size_t len, int exclusive)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), 0644);
	if (fd < 0)
		return errno;
	size_t done = 0;
	while (done < len) {
		ssize_t k = write(fd, text + done, len - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		done += (size_t)k;
	}
	int e = done < len ? (errno ? errno : EIO) : 0;
	if (!e && fsync(fd))
		e = errno;
	if (close(fd) && !e)
		e = errno;
	if (e)
		unlink(path);
	return e;
}

uint64_t rt_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

void rt_sb_free(rt_strbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

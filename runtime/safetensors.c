/* safetensors: validate-and-copy reader and atomic writer for the
 * safetensors format; the contract is in safetensors.h.
 *
 * Reading checks, in order: the 8-byte length, the header's extent, the
 * JSON, then each entry (dtype, shape, offsets, size, name), then that the
 * nonempty byte ranges are pairwise disjoint. Every message starts with
 * the file name. Last, when the metadata holds "crc32", every tensor's
 * bytes are checked against it (a file without it, e.g. torch's, is read
 * unchecked). */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "json.h"

/* The metadata key of the checksums (safetensors.h). */
#define RT_ST_CRC_KEY "crc32"

/* The CRC-32 of a tensor's bytes as the file spells it: 8 hex digits. */
static void rt_st_crc(const rt_tensor *t, char hex[9])
{
	size_t nb = (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype);
	unsigned long crc = crc32_z(0, (const Bytef *)t->data, nb);
	snprintf(hex, 9, "%08lx", crc & 0xffffffffUL);
}

/* Writes "what: message" into err and returns RT_ERR. The message may
 * quote the file (tensor names, dtypes, keys): its control characters
 * become '?', so that it stays one line and cannot drive a terminal. */
static int rt_st_fail(char *err, size_t errlen, const char *what,
                      const char *fmt, ...)
{
	if (!err || !errlen)
		return RT_ERR;
	int n = snprintf(err, errlen, "%s: ", what);
	if (n >= 0 && (size_t)n < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
		for (char *c = err + n; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
	}
	return RT_ERR;
}

/* ---- reading ---- */

/* A tensor's byte range in the data region, kept for the overlap check. */
typedef struct {
	uint64_t begin, end;
	int index;              /* into the tensor set */
} rt_st_span;

typedef struct {
	const char *what;
	char *err;
	size_t errlen;
	const unsigned char *data;  /* (datalen) the data region */
	uint64_t datalen;
	rt_st_span *spans;          /* (nspans) nonempty ranges, room for spancap */
	int nspans, spancap;
	const char *crc;            /* the metadata's checksums, or NULL */
	rt_tensorset *out;
} rt_st_reader;

#define RT_ST_FAIL(r, ...) rt_st_fail((r)->err, (r)->errlen, (r)->what, __VA_ARGS__)

static uint64_t rt_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int k = 7; k >= 0; k--)
		v = v << 8 | p[k];
	return v;
}

/* The tensor's "shape": an array of at most RT_MAXDIM non-negative ints. */
static int rt_st_shape(rt_st_reader *r, const char *name, const rt_json *j,
                       int *rank, int64_t *shape)
{
	if (j->type != RT_JARR)
		return RT_ST_FAIL(r, "tensor '%s': shape must be an array, not %s",
		                  name, rt_json_type_name(j->type));
	if (j->n > RT_MAXDIM)
		return RT_ST_FAIL(r, "tensor '%s': rank %d exceeds the maximum %d",
		                  name, j->n, RT_MAXDIM);
	for (int d = 0; d < j->n; d++) {
		const rt_json *v = &j->kids[d];
		if (v->type != RT_JNUM || !v->isint)
			return RT_ST_FAIL(r, "tensor '%s': shape[%d] is not an integer",
			                  name, d);
		if (v->i < 0)
			return RT_ST_FAIL(r, "tensor '%s': shape[%d] = %lld is negative",
			                  name, d, (long long)v->i);
		shape[d] = v->i;
	}
	*rank = j->n;
	return RT_OK;
}

/* The tensor's "data_offsets": [begin, end] within the data region. */
static int rt_st_offsets(rt_st_reader *r, const char *name, const rt_json *j,
                         uint64_t *begin, uint64_t *end)
{
	if (j->type != RT_JARR || j->n != 2)
		return RT_ST_FAIL(r, "tensor '%s': data_offsets is not a [begin, end] pair",
		                  name);
	for (int k = 0; k < 2; k++) {
		const rt_json *v = &j->kids[k];
		if (v->type != RT_JNUM || !v->isint || v->i < 0)
			return RT_ST_FAIL(r, "tensor '%s': data_offsets[%d] is not a "
			                  "non-negative integer", name, k);
	}
	*begin = (uint64_t)j->kids[0].i;
	*end = (uint64_t)j->kids[1].i;
	if (*begin > *end)
		return RT_ST_FAIL(r, "tensor '%s': data_offsets [%llu, %llu] have begin > end",
		                  name, (unsigned long long)*begin, (unsigned long long)*end);
	if (*end > r->datalen)
		return RT_ST_FAIL(r, "tensor '%s': data_offsets end %llu is past the "
		                  "data region (%llu bytes)", name,
		                  (unsigned long long)*end, (unsigned long long)r->datalen);
	return RT_OK;
}

/* Looks up a required member of a tensor entry. */
static const rt_json *rt_st_field(rt_st_reader *r, const char *name,
                                  const rt_json *entry, const char *key)
{
	const rt_json *v = rt_json_get(entry, key);
	if (!v)
		RT_ST_FAIL(r, "tensor '%s': missing \"%s\"", name, key);
	return v;
}

static int rt_st_dtype(rt_st_reader *r, const char *name, const rt_json *j,
                       rt_dtype *dt)
{
	if (j->type != RT_JSTR)
		return RT_ST_FAIL(r, "tensor '%s': dtype must be a string, not %s",
		                  name, rt_json_type_name(j->type));
	if (rt_dtype_parse(j->str, dt))
		return RT_ST_FAIL(r, "tensor '%s': unknown dtype '%s'", name, j->str);
	return RT_OK;
}

/* Checks that the byte range holds exactly numel elements of dt. */
static int rt_st_size(rt_st_reader *r, const char *name, rt_dtype dt,
                      int rank, const int64_t *shape, uint64_t nbytes)
{
	int64_t numel = rt_numel(rank, shape);
	uint64_t esz = rt_dtype_size(dt);
	if (numel < 0 || (uint64_t)numel > UINT64_MAX / esz)
		return RT_ST_FAIL(r, "tensor '%s': shape has too many elements", name);
	if ((uint64_t)numel * esz != nbytes)
		return RT_ST_FAIL(r, "tensor '%s': data_offsets span %llu bytes but "
		                  "%lld elements of %s need %llu", name,
		                  (unsigned long long)nbytes, (long long)numel,
		                  rt_dtype_name(dt), (unsigned long long)(numel * esz));
	return RT_OK;
}

/* Remembers a nonempty range of tensor index for rt_st_overlaps. */
static int rt_st_add_span(rt_st_reader *r, uint64_t begin, uint64_t end, int index)
{
	if (begin == end)
		return RT_OK;
	if (r->nspans == r->spancap) {     /* doubling: n tensors cost O(n) copies */
		int cap = r->spancap ? 2 * r->spancap : 64;
		rt_st_span *s = realloc(r->spans, (size_t)cap * sizeof *s);
		if (!s)
			return RT_ST_FAIL(r, "out of memory");
		r->spans = s;
		r->spancap = cap;
	}
	r->spans[r->nspans++] = (rt_st_span){begin, end, index};
	return RT_OK;
}

/* One tensor entry: validate it, then add a copy of its bytes to the set. */
static int rt_st_tensor(rt_st_reader *r, const char *name, const rt_json *e)
{
	const rt_json *jd, *js, *jo;
	rt_dtype dt = RT_F32;
	int rank = 0;
	int64_t shape[RT_MAXDIM];
	uint64_t begin = 0, end = 0;
	if (e->type != RT_JOBJ)
		return RT_ST_FAIL(r, "tensor '%s': entry must be an object, not %s",
		                  name, rt_json_type_name(e->type));
	if (!(jd = rt_st_field(r, name, e, "dtype")) ||
	    !(js = rt_st_field(r, name, e, "shape")) ||
	    !(jo = rt_st_field(r, name, e, "data_offsets")))
		return RT_ERR;
	if (rt_st_dtype(r, name, jd, &dt) || rt_st_shape(r, name, js, &rank, shape) ||
	    rt_st_offsets(r, name, jo, &begin, &end) ||
	    rt_st_size(r, name, dt, rank, shape, end - begin))
		return RT_ERR;
	if (rt_set_find(r->out, name))
		return RT_ST_FAIL(r, "duplicate tensor name '%s'", name);
	rt_tensor *t = rt_set_add(r->out, name, dt, rank, shape);
	if (!t)
		return RT_ST_FAIL(r, "out of memory");
	memcpy(t->data, r->data + begin, (size_t)(end - begin));
	return rt_st_add_span(r, begin, end, r->out->n - 1);
}

/* "__metadata__": an object whose values are all strings. */
static int rt_st_metadata(rt_st_reader *r, const rt_json *m)
{
	if (m->type != RT_JOBJ)
		return RT_ST_FAIL(r, "__metadata__ must be an object, not %s",
		                  rt_json_type_name(m->type));
	for (int k = 0; k < m->n; k++) {
		if (m->kids[k].type != RT_JSTR)
			return RT_ST_FAIL(r, "__metadata__ value of '%s' must be a "
			                  "string, not %s", m->keys[k],
			                  rt_json_type_name(m->kids[k].type));
		if (strcmp(m->keys[k], RT_ST_CRC_KEY) == 0)
			r->crc = m->kids[k].str;
		else if (rt_set_meta(r->out, m->keys[k], m->kids[k].str))
			return RT_ST_FAIL(r, "out of memory");
	}
	return RT_OK;
}

static int rt_st_span_cmp(const void *a, const void *b)
{
	const rt_st_span *x = a, *y = b;
	return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* With ranges sorted by begin, two overlap iff one begins before the
 * furthest end seen so far. */
static int rt_st_overlaps(rt_st_reader *r)
{
	if (r->nspans < 2)
		return RT_OK;
	qsort(r->spans, (size_t)r->nspans, sizeof *r->spans, rt_st_span_cmp);
	const rt_st_span *far = &r->spans[0];
	for (int k = 1; k < r->nspans; k++) {
		const rt_st_span *s = &r->spans[k];
		if (s->begin < far->end)
			return RT_ST_FAIL(r, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
			                  r->out->t[far->index].name,
			                  (unsigned long long)far->begin, (unsigned long long)far->end,
			                  r->out->t[s->index].name,
			                  (unsigned long long)s->begin, (unsigned long long)s->end);
		if (s->end > far->end)
			far = s;
	}
	return RT_OK;
}

/* One checksum entry: the tensor it names has bytes of that CRC-32. */
static int rt_st_check_crc(rt_st_reader *r, const char *name, const rt_json *want)
{
	char got[9];
	const rt_tensor *t = rt_set_find(r->out, name);
	if (!t)
		return RT_ST_FAIL(r, "the checksums name '%s', which the file lacks", name);
	rt_st_crc(t, got);
	if (want->type != RT_JSTR || strcmp(want->str, got) != 0)
		return RT_ST_FAIL(r, "tensor '%s' fails its checksum (its bytes have CRC-32 %s, the "
		                  "header says %s): the file is corrupt", name, got,
		                  want->type == RT_JSTR ? want->str : "something else");
	return RT_OK;
}

/* The metadata's checksums (a JSON object: name -> CRC-32) against every
 * tensor read. */
static int rt_st_checksums(rt_st_reader *r)
{
	rt_json c = {0};
	char jerr[160];
	if (!r->crc)
		return RT_OK;
	int rc = rt_json_parse(r->crc, strlen(r->crc), &c, jerr, sizeof jerr) || c.type != RT_JOBJ
	         ? RT_ST_FAIL(r, "the metadata's %s is not a JSON object of checksums",
	                      RT_ST_CRC_KEY) : RT_OK;
	for (int k = 0; rc == RT_OK && k < c.n; k++)
		rc = rt_st_check_crc(r, c.keys[k], &c.kids[k]);
	if (rc == RT_OK && c.n != r->out->n)
		rc = RT_ST_FAIL(r, "the checksums cover %d tensors, the file holds %d", c.n, r->out->n);
	rt_json_free(&c);
	return rc;
}

/* Walks the header object: metadata and tensor entries, then overlaps. */
static int rt_st_entries(rt_st_reader *r, const rt_json *h)
{
	if (h->type != RT_JOBJ)
		return RT_ST_FAIL(r, "header must be a JSON object, not %s",
		                  rt_json_type_name(h->type));
	for (int k = 0; k < h->n; k++) {
		int rc = strcmp(h->keys[k], "__metadata__") == 0
		         ? rt_st_metadata(r, &h->kids[k])
		         : rt_st_tensor(r, h->keys[k], &h->kids[k]);
		if (rc)
			return RT_ERR;
	}
	return rt_st_overlaps(r) ? RT_ERR : rt_st_checksums(r);
}

/* Checks the 8-byte length prefix against the buffer; sets *hlen. */
static int rt_st_prefix(rt_st_reader *r, size_t len, const unsigned char *b,
                        uint64_t *hlen)
{
	if (len < 8)
		return RT_ST_FAIL(r, "file too short for a safetensors header "
		                  "(%zu bytes, need at least 8)", len);
	*hlen = rt_le64(b);
	if (*hlen > len - 8)
		return RT_ST_FAIL(r, "header length %llu past end of file (%zu bytes)",
		                  (unsigned long long)*hlen, len);
	return RT_OK;
}

int rt_st_parse(const void *buf, size_t len, const char *what,
                rt_tensorset *out, char *err, size_t errlen)
{
	const unsigned char *b = buf;
	rt_st_reader r = {what, err, errlen, NULL, 0, NULL, 0, 0, NULL, out};
	rt_json h = {0};
	uint64_t hlen = 0;
	char jerr[160];
	int rc = RT_ERR;
	if (err && errlen)
		err[0] = 0;
	if (rt_st_prefix(&r, len, b, &hlen))
		goto done;
	if (rt_json_parse((const char *)b + 8, (size_t)hlen, &h, jerr, sizeof jerr)) {
		RT_ST_FAIL(&r, "invalid JSON in header %s", jerr);
		goto done;
	}
	r.data = b + 8 + hlen;
	r.datalen = len - 8 - hlen;
	rc = rt_st_entries(&r, &h);
done:
	rt_json_free(&h);
	free(r.spans);
	if (rc)
		rt_set_free(out);
	return rc;
}

/* Reads the whole regular file at path into a malloc'd buffer. */
static int rt_st_slurp(const char *path, unsigned char **buf, size_t *len,
                       char *err, size_t errlen)
{
	struct stat st;
	FILE *f = fopen(path, "rb");
	if (!f)
		return rt_st_fail(err, errlen, path, "cannot open: %s", strerror(errno));
	int rc = RT_ERR;
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		rt_st_fail(err, errlen, path, "not a regular file");
		goto done;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	if (!*buf) {
		rt_st_fail(err, errlen, path, "out of memory for %zu bytes", *len);
		goto done;
	}
	if (fread(*buf, 1, *len, f) != *len) {
		rt_st_fail(err, errlen, path, "read error: %s",
		           ferror(f) ? strerror(errno) : "file shrank while reading");
		free(*buf);
		*buf = NULL;
		goto done;
	}
	rc = RT_OK;
done:
	fclose(f);
	return rc;
}

int rt_st_read(const char *path, rt_tensorset *out, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	if (rt_st_slurp(path, &buf, &len, err, errlen)) {
		rt_set_free(out);
		return RT_ERR;
	}
	int rc = rt_st_parse(buf, len, path, out, err, errlen);
	free(buf);
	return rc;
}

/* ---- writing ---- */

static size_t rt_st_nbytes(const rt_tensor *t)
{
	return (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype);
}

/* Refuses sets that cannot be described by a header. */
static int rt_st_check_set(const char *path, const rt_tensorset *ts,
                           char *err, size_t errlen)
{
	for (int k = 0; k < ts->n; k++) {
		const rt_tensor *t = &ts->t[k];
		if (!t->name || strcmp(t->name, "__metadata__") == 0)
			return rt_st_fail(err, errlen, path, "tensor %d has a reserved "
			                  "or missing name", k);
		if (rt_dtype_size(t->dtype) == 0 || t->rank < 0 || t->rank > RT_MAXDIM ||
		    rt_numel(t->rank, t->shape) < 0 || (!t->data && rt_st_nbytes(t)))
			return rt_st_fail(err, errlen, path, "tensor '%s' has an invalid "
			                  "dtype, shape or data", t->name);
	}
	return RT_OK;
}

/* The checksums' JSON object, {"NAME": "CRC-32", ...}, as a string. */
static void rt_st_put_crcs(rt_strbuf *b, const rt_tensorset *ts)
{
	rt_strbuf crcs = {0};
	char hex[9];
	rt_sb_puts(&crcs, "{");
	for (int k = 0; k < ts->n; k++) {
		rt_st_crc(&ts->t[k], hex);
		rt_sb_puts(&crcs, k ? "," : "");
		rt_sb_json_string(&crcs, ts->t[k].name);
		rt_sb_printf(&crcs, ":\"%s\"", hex);
	}
	rt_sb_puts(&crcs, "}");
	b->oom |= crcs.oom;
	rt_sb_json_string(b, crcs.oom ? "" : crcs.p);
	rt_sb_free(&crcs);
}

/* The set's metadata pairs, then the checksums (in place of any the set
 * holds). */
static void rt_st_put_meta(rt_strbuf *b, const rt_tensorset *ts)
{
	rt_sb_puts(b, "\"__metadata__\":{");
	for (int k = 0; k < ts->nmeta; k++) {
		if (strcmp(ts->meta[k].key, RT_ST_CRC_KEY) == 0)
			continue;
		rt_sb_json_string(b, ts->meta[k].key);
		rt_sb_puts(b, ":");
		rt_sb_json_string(b, ts->meta[k].value);
		rt_sb_puts(b, ",");
	}
	rt_sb_puts(b, "\"" RT_ST_CRC_KEY "\":");
	rt_st_put_crcs(b, ts);
	rt_sb_puts(b, "}");
}

/* The JSON header: metadata first, tensors packed back to back in set
 * order, then spaces until 8 + length is a multiple of 8. */
static void rt_st_header(rt_strbuf *b, const rt_tensorset *ts)
{
	uint64_t off = 0;
	rt_sb_puts(b, "{");
	rt_st_put_meta(b, ts);
	for (int k = 0; k < ts->n; k++) {
		const rt_tensor *t = &ts->t[k];
		uint64_t nb = rt_st_nbytes(t);
		rt_sb_puts(b, ",");
		rt_sb_json_string(b, t->name);
		rt_sb_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", rt_dtype_name(t->dtype));
		for (int d = 0; d < t->rank; d++)
			rt_sb_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
		rt_sb_printf(b, "],\"data_offsets\":[%llu,%llu]}",
		             (unsigned long long)off, (unsigned long long)(off + nb));
		off += nb;
	}
	rt_sb_puts(b, "}");
	while (b->len % 8 && !b->oom)
		rt_sb_puts(b, " ");
}

/* Writes prefix, header and data to f; RT_ERR with errno set on failure. */
static int rt_st_emit(FILE *f, const rt_strbuf *h, const rt_tensorset *ts)
{
	unsigned char pre[8];
	for (int k = 0; k < 8; k++)
		pre[k] = (unsigned char)((uint64_t)h->len >> (8 * k));
	if (fwrite(pre, 1, 8, f) != 8 || fwrite(h->p, 1, h->len, f) != h->len)
		return RT_ERR;
	for (int k = 0; k < ts->n; k++) {
		size_t nb = rt_st_nbytes(&ts->t[k]);
		if (fwrite(ts->t[k].data, 1, nb, f) != nb)
			return RT_ERR;
	}
	return fflush(f) || fsync(fileno(f)) ? RT_ERR : RT_OK;
}

/* Writes the whole file to tmp, durably; removes tmp on failure. */
static int rt_st_write_tmp(const char *path, const char *tmp, const rt_strbuf *h,
                           const rt_tensorset *ts, char *err, size_t errlen)
{
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return rt_st_fail(err, errlen, path, "cannot create %s: %s", tmp,
		                  strerror(errno));
	int rc = rt_st_emit(f, h, ts);
	int e = errno;
	if (fclose(f) && rc == RT_OK) {
		rc = RT_ERR;
		e = errno;
	}
	if (rc) {
		remove(tmp);
		return rt_st_fail(err, errlen, path, "write to %s failed: %s", tmp,
		                  strerror(e));
	}
	return RT_OK;
}

/* Makes the rename durable. Filesystems that cannot sync a directory
 * (EINVAL) are accepted. */
static int rt_st_sync_dir(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	char *dir = malloc(n + 2);
	if (!dir)
		return rt_st_fail(err, errlen, path, "out of memory");
	if (!slash)
		strcpy(dir, ".");
	else if (n == 0)
		strcpy(dir, "/");
	else {
		memcpy(dir, path, n);
		dir[n] = 0;
	}
	int rc = RT_OK, fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || (fsync(fd) && errno != EINVAL))
		rc = rt_st_fail(err, errlen, path, "cannot sync directory %s: %s",
		                dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int rt_st_write(const char *path, const rt_tensorset *ts,
                char *err, size_t errlen)
{
	rt_strbuf h = {0}, tmp = {0};
	int rc = RT_ERR;
	if (err && errlen)
		err[0] = 0;
	if (rt_st_check_set(path, ts, err, errlen))
		return RT_ERR;
	rt_st_header(&h, ts);
	rt_sb_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	if (h.oom || tmp.oom) {
		rt_st_fail(err, errlen, path, "out of memory");
		goto done;
	}
	if (rt_st_write_tmp(path, tmp.p, &h, ts, err, errlen))
		goto done;
	if (rename(tmp.p, path)) {
		int e = errno;
		remove(tmp.p);
		rt_st_fail(err, errlen, path, "cannot rename %s over it: %s", tmp.p,
		           strerror(e));
		goto done;
	}
	rc = rt_st_sync_dir(path, err, errlen);
done:
	rt_sb_free(&h);
	rt_sb_free(&tmp);
	return rc;
}

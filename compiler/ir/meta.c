/* meta: the program metadata a script sets (ddpm.meta), checked before it
 * reaches the compiled program's descriptor (kir/describe.c writes each
 * value as is, and runtime/program.c and the executable's commands read
 * them).
 *
 * A value is one JSON value (so that it cannot end the "meta" object and
 * write members of its own), of a key listed in `rules` with that key's
 * type and range; ir_meta_verify checks it against the graph once the
 * script has run. */
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "json.h"

typedef enum { M_INT, M_NUM, M_BOOL, M_WORD, M_OBJECT, M_IMAGE } meta_kind;

/* What the compiled program reads: a number's range, a word's choices
 * (space-separated). image is [C, H, W], each in the range. */
static const struct {
	const char *key;
	meta_kind kind;
	double lo, hi;
	const char *words;
} rules[] = {
	{ "image", M_IMAGE, 1, 65536, NULL },
	{ "batch", M_INT, 1, 1 << 20, NULL },
	{ "timesteps", M_INT, 1, 1e6, NULL },
	{ "schedule", M_WORD, 0, 0, "linear cosine" },
	{ "prediction", M_WORD, 0, 0, "epsilon v_prediction sample" },
	{ "variance", M_WORD, 0, 0, "fixed_small fixed_large" },
	{ "beta_start", M_NUM, 0, 1, NULL },
	{ "beta_end", M_NUM, 0, 1, NULL },
	{ "clip_sample", M_BOOL, 0, 0, NULL },
	{ "clip_sample_range", M_NUM, 1e-6, 1e9, NULL },
	{ "precision", M_WORD, 0, 0, "fp32 bf16 fp16" },
	{ "metric", M_WORD, 0, 0, "fashion-mnist" },
	{ "task", M_WORD, 0, 0, "classifier" },
	{ "config", M_OBJECT, 0, 0, NULL },
	{ "classifier", M_OBJECT, 0, 0, NULL },
	{ "optimizer", M_OBJECT, 0, 0, NULL },
};

#define NRULES ((int)(sizeof rules / sizeof *rules))

static int rule_of(const char *key)
{
	for (int r = 0; r < NRULES; r++)
		if (!strcmp(rules[r].key, key))
			return r;
	return -1;
}

/* Whether s is one of the space-separated words. */
static int is_word(const char *s, const char *words)
{
	size_t n = strlen(s);
	for (const char *w = words; n && (w = strstr(w, s)); w += n)
		if ((w == words || w[-1] == ' ') && (w[n] == ' ' || !w[n]))
			return 1;
	return 0;
}

static int in_range(const rt_json *v, int integer, double lo, double hi)
{
	return v->type == RT_JNUM && (!integer || v->isint) && v->num >= lo && v->num <= hi;
}

/* Whether v fits rule r. */
static int fits(int r, const rt_json *v)
{
	switch (rules[r].kind) {
	case M_INT: return in_range(v, 1, rules[r].lo, rules[r].hi);
	case M_NUM: return in_range(v, 0, rules[r].lo, rules[r].hi);
	case M_BOOL: return v->type == RT_JBOOL;
	case M_WORD: return v->type == RT_JSTR && is_word(v->str, rules[r].words);
	case M_OBJECT: return v->type == RT_JOBJ;
	case M_IMAGE:
		if (v->type != RT_JARR || v->n != 3)
			return 0;
		for (int i = 0; i < 3; i++)
			if (!in_range(&v->kids[i], 1, rules[r].lo, rules[r].hi))
				return 0;
		return 1;
	}
	return 0;
}

/* What rule r asks for, in words. */
static void wanted(int r, char *buf, size_t len)
{
	switch (rules[r].kind) {
	case M_INT: snprintf(buf, len, "an integer from %.0f to %.0f", rules[r].lo, rules[r].hi); break;
	case M_NUM: snprintf(buf, len, "a number from %g to %g", rules[r].lo, rules[r].hi); break;
	case M_BOOL: snprintf(buf, len, "true or false"); break;
	case M_WORD: snprintf(buf, len, "one of: %s", rules[r].words); break;
	case M_OBJECT: snprintf(buf, len, "a table of named values"); break;
	case M_IMAGE: snprintf(buf, len, "{C, H, W}, integers from 1 to %.0f", rules[r].hi); break;
	}
}

/* The known keys, for the message about an unknown one. */
static void known_keys(char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	for (int r = 0; r < NRULES && at < len; r++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", r ? ", " : "", rules[r].key);
}

/* 0 when json is one value that fits the rule of key; else -1 with the
 * reason in g->err. */
static int check(ir_graph *g, const char *key, const char *json, const char *where)
{
	char msg[256], want[200];
	rt_json v;
	int r = rule_of(key);
	if (r < 0) {
		known_keys(want, sizeof want);
		return ir_fail(g, where, "meta", "unknown key '%s' (the program reads %s)", key, want);
	}
	if (rt_json_parse(json, strlen(json), &v, msg, sizeof msg) != 0)
		return ir_fail(g, where, "meta", "'%s' is not one JSON value (%s)", key, msg);
	int ok = fits(r, &v);
	rt_json_free(&v);
	if (ok)
		return 0;
	wanted(r, want, sizeof want);
	return ir_fail(g, where, "meta", "'%s' must be %s, got %.80s", key, want, json);
}

int ir_set_meta(ir_graph *g, const char *key, const char *json, const char *where)
{
	if (check(g, key, json, where) < 0)
		return -1;
	ir_meta m = { ir_strdup(g, key), ir_strdup(g, json), ir_strdup(g, where) };
	for (int i = 0; i < g->nmeta; i++)
		if (!strcmp(g->meta[i].key, key)) {
			g->meta[i] = m;
			return 0;
		}
	g->meta = ir_grow(g->meta, g->nmeta, &g->metacap, sizeof *g->meta);
	g->meta[g->nmeta++] = m;
	return 0;
}

static const ir_meta *find(const ir_graph *g, const char *key)
{
	for (int i = 0; i < g->nmeta; i++)
		if (!strcmp(g->meta[i].key, key))
			return &g->meta[i];
	return NULL;
}

const char *ir_get_meta(const ir_graph *g, const char *key)
{
	const ir_meta *m = find(g, key);
	return m ? m->json : NULL;
}

/* The integers of meta value `key` (a number or a list of them) into
 * out[0..max); the others are left as they are. */
static void meta_ints(const ir_graph *g, const char *key, int64_t *out, int max)
{
	const ir_meta *m = find(g, key);
	rt_json v;
	char msg[128];
	if (!m || rt_json_parse(m->json, strlen(m->json), &v, msg, sizeof msg) != 0)
		return;
	if (v.type == RT_JNUM)
		out[0] = v.i;
	for (int i = 0; v.type == RT_JARR && i < v.n && i < max; i++)
		out[i] = v.kids[i].i;
	rt_json_free(&v);
}

/* The shape (B, C, H, W) that meta image and batch give the image inputs;
 * a dimension the metadata does not give is -1. */
static ir_shape image_inputs_shape(const ir_graph *g)
{
	ir_shape s = { 4, { -1, -1, -1, -1 } };
	meta_ints(g, "batch", s.d, 1);
	meta_ints(g, "image", s.d + 1, 3);
	return s;
}

/* Whether shape s is `want`, where want's -1 dims match anything. */
static int matches(const ir_shape *s, const ir_shape *want)
{
	if (s->rank != want->rank)
		return 0;
	for (int d = 0; d < s->rank; d++)
		if (want->d[d] >= 0 && s->d[d] != want->d[d])
			return 0;
	return 1;
}

int ir_meta_verify(ir_graph *g)
{
	static const char *const images[] = { "x", "x0", "sample.x" };
	const ir_meta *m = find(g, "image") ? find(g, "image") : find(g, "batch");
	if (!m)
		return 0;
	ir_shape want = image_inputs_shape(g);
	for (int i = 0; i < g->n; i++) {
		const ir_node *n = &g->nodes[i];
		int image = 0;
		for (int k = 0; n->op == OP_input && k < 3; k++)
			image |= !strcmp(n->name, images[k]);
		if (!image || matches(&n->shape, &want))
			continue;
		char a[128], b[128];
		return ir_fail(g, m->where, "meta", "image and batch say the images are %s (-1: not "
		               "given), but input '%s' (%s) is %s", ir_shape_str(&want, a, sizeof a),
		               n->name, n->where, ir_shape_str(&n->shape, b, sizeof b));
	}
	return 0;
}

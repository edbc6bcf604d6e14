/* describe: what a compiled executable knows about its program, as the
 * JSON text and the constant data blob embedded next to its kernels. This
 * is the contract read by runtime/program.c:
 *
 *   {"model", "meta": {key: value...},
 *    "params": [{"name", "dtype", "shape", "trainable", "init", "a", "b",
 *                "from", "index"}],
 *    "entries": [{"name", "arena_bytes",
 *                 "buffers": [{"kind", "name", "dtype", "shape", "offset"}],
 *                 "kernels": [{"fn", "args", "rows", "name", "flops", ...}]}]}
 *
 * A temp's offset is into its entry's arena, a const's into the data blob
 * (64-byte aligned); kernel "fn" indexes ddpmc_kernels (its function,
 * kir_share, which must have run; -1 when the program has no CPU code) and
 * "args" lists the buffers that function gets; backends add members
 * to a kernel's object through kir_describe_opts (OpenCL: "cl"). */
#include <string.h>

#include "json.h"
#include "kir.h"

static void put_shape(rt_strbuf *b, const ir_shape *s)
{
	rt_sb_puts(b, "[");
	for (int r = 0; r < s->rank; r++)
		rt_sb_printf(b, "%s%lld", r ? ", " : "", (long long)s->d[r]);
	rt_sb_puts(b, "]");
}

static void put_params(rt_strbuf *b, const ir_graph *g)
{
	static const char *inits[] = { "zeros", "ones", "uniform", "normal", "copy" };
	rt_sb_puts(b, "\"params\": [");
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *p = &g->nodes[g->params[i]];
		const ir_init *in = &p->a.param.init;
		rt_sb_printf(b, "%s\n  {\"name\": ", i ? "," : "");
		rt_sb_json_string(b, p->name);
		rt_sb_printf(b, ", \"dtype\": \"%s\", \"shape\": ", rt_dtype_name(p->dtype));
		put_shape(b, &p->shape);
		rt_sb_printf(b, ", \"trainable\": %s, \"init\": \"%s\", \"a\": %.17g, \"b\": %.17g, \"from\": ",
		             p->a.param.trainable ? "true" : "false", inits[in->kind], in->a, in->b);
		if (in->kind == INIT_COPY)
			rt_sb_json_string(b, g->nodes[in->from].name);
		else
			rt_sb_puts(b, "null");
		rt_sb_printf(b, ", \"index\": %d}", p->a.param.index);
	}
	rt_sb_puts(b, "]");
}

/* Appends a const buffer's bytes to the blob (once per distinct data). */
static int64_t place_const(rt_strbuf *data, const kir_buffer *kb)
{
	size_t len = (size_t)kb->numel * rt_dtype_size(kb->dtype);
	while (data->len % 64)
		rt_sb_put(data, "", 1);
	int64_t at = (int64_t)data->len;
	rt_sb_put(data, kb->data, len);
	return at;
}

static void put_buffers(rt_strbuf *b, rt_strbuf *data, const kir_program *p)
{
	static const char *kinds[] = { "param", "input", "output", "temp", "const" };
	rt_sb_puts(b, "\"buffers\": [");
	for (int i = 0; i < p->nbuf; i++) {
		const kir_buffer *kb = &p->buf[i];
		int64_t offset = kb->kind == KB_CONST ? place_const(data, kb) : kb->offset;
		rt_sb_printf(b, "%s\n   {\"kind\": \"%s\", \"name\": ", i ? "," : "", kinds[kb->kind]);
		rt_sb_json_string(b, kb->name ? kb->name : "");
		rt_sb_printf(b, ", \"dtype\": \"%s\", \"shape\": ", rt_dtype_name(kb->dtype));
		put_shape(b, &kb->shape);
		rt_sb_printf(b, ", \"offset\": %lld}", (long long)offset);
	}
	rt_sb_puts(b, "]");
}

static void put_kernels(rt_strbuf *b, const kir_program *p, int e,
                        const kir_describe_opts *o)
{
	rt_sb_puts(b, "\"kernels\": [");
	for (int i = 0; i < p->nk; i++) {
		const kir_kernel *k = &p->k[i];
		rt_sb_printf(b, "%s\n   {\"fn\": %d, \"args\": [", i ? "," : "", o && o->no_cpu ? -1 : k->fn);
		for (int j = 0; j < k->narg; j++)
			rt_sb_printf(b, "%s%d", j ? ", " : "", k->arg[j]);
		rt_sb_printf(b, "], \"rows\": %lld, \"name\": \"%s\", \"flops\": %.0f",
		             (long long)kir_rows(k), k->name, k->flops);
		if (o && o->kernel_members) {
			rt_sb_puts(b, ", ");
			o->kernel_members(b, e, i, o->ctx);
		}
		rt_sb_puts(b, "}");
	}
	rt_sb_puts(b, "]");
}

void kir_describe_meta(rt_strbuf *b, const ir_graph *g)
{
	rt_sb_puts(b, "{");
	for (int i = 0; i < g->nmeta; i++) {
		rt_sb_puts(b, i ? ", " : "");
		rt_sb_json_string(b, g->meta[i].key);
		rt_sb_printf(b, ": %s", g->meta[i].json);       /* one JSON value (ir_set_meta) */
	}
	rt_sb_puts(b, "}");
}

void kir_describe(const ir_graph *g, const char *model, kir_program **progs, int n,
                  const kir_describe_opts *opts, rt_strbuf *json, rt_strbuf *data)
{
	rt_sb_puts(json, "{\"model\": ");
	rt_sb_json_string(json, model);
	rt_sb_puts(json, ",\n ");
	rt_sb_puts(json, "\"meta\": ");
	kir_describe_meta(json, g);
	rt_sb_puts(json, ",\n ");
	put_params(json, g);
	rt_sb_puts(json, ",\n \"entries\": [");
	for (int e = 0; e < n; e++) {
		rt_sb_printf(json, "%s\n  {\"name\": ", e ? "," : "");
		rt_sb_json_string(json, progs[e]->entry);
		rt_sb_printf(json, ", \"arena_bytes\": %lld,\n  ", (long long)progs[e]->arena_bytes);
		put_buffers(json, data, progs[e]);
		rt_sb_puts(json, ",\n  ");
		put_kernels(json, progs[e], e, opts);
		rt_sb_puts(json, "}");
	}
	rt_sb_puts(json, "]}\n");
}

/* cl_render.c: one kernel of the kernel IR as OpenCL C, with its variants
 * (cl_kernel.h); cl_source.c makes the source and the launches of them
 * (see cl_render.h for the contract).
 *
 * Every kernel is rendered in one of three shapes, chosen per kernel:
 *
 *   point  one work-item per domain point; the reduction (if any) is a
 *          loop inside it. Elementwise kernels and short reductions; a
 *          batch's segments one after the other (those that compute
 *          alike, the optimizer's update of each parameter of one shape,
 *          written once and run on each segment's buffers).
 *   group  one work-group per domain point; its work-items stride over the
 *          reduction and combine their partial results in local memory
 *          (a tree). Long reductions over few points: norms, the loss,
 *          contractions too small to tile the GPU (weight gradients of
 *          few channels). A reduction to one point is split over many
 *          work-groups (split_groups): each writes its total into the
 *          launch's scratch, the last to finish sums them in group
 *          order and stores.
 *   tile   a contraction (the reduced value is a product a*b: conv2d, its
 *          gradients, matmul): the domain vars only a reads are the
 *          tile's a side, those a does not read its b side, and those
 *          both read (a batched matmul's batch, a weight gradient's
 *          image block: the slices of its split reduction) number the
 *          tiles' batches. A work-group of 16 x 16 work-items computes a
 *          tile of (16 MA) x (16 MB) points of one batch, MA x MB per
 *          work-item in registers (MA, MB in 1, 2, 4 by the sides'
 *          lengths, smaller while that leaves under the target's
 *          work-groups: cl_target); per chunk of RC reduction steps it
 *          stages a's and b's values in local memory (neighbouring
 *          work-items on neighbouring points, or on neighbouring steps
 *          where those are nearer in memory: coalesced loads; each
 *          work-item stages the same side points in every chunk, so
 *          their indices are decoded once, before the reduction loop;
 *          the next chunk's loads are issued into registers before the
 *          work-group computes on this one, so that they are in flight
 *          meanwhile), then every work-item accumulates its points from
 *          there. Each
 *          point's sum runs in the same order as the point shape's loop.
 *
 * Variants (cl_launch): the renderer picks each kernel's shape and sizes
 * without the device, so it also renders those a device may prefer,
 * which `tune` times there: a tile staged without prefetch, a tile's
 * other micro-tiles (1 to 8 points a side; 8 where the side has a whole
 * tile of 128), a tile read as vectors (each work-item's points of a
 * side contiguous in local memory, one vector load per side and step
 * instead of one load per point: its choice and its other micro-tiles of
 * 16 points or more), a group's work-groups of half and twice the size
 * and of the most the target allows, a split reduction in one work-group
 * (of its size and of the most), a long point kernel's launch in other
 * work-groups. (cl_source.c puts them in parts after every kernel's first
 * choice, so that an open which does not launch them does not build
 * them.)
 *
 * Inside a kernel every needed expression becomes one `const` variable
 * xN, operands first; expressions that do not vary over the reduction are
 * computed once before its loop. Indices are of type IDX, which each
 * kernel declares first: int where that computes the same as long
 * (index_fits), else long; a random draw's element (shard * numel + i)
 * is long in every kernel (kir_mark_elements). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl_kernel.h"

enum { POINT_LOCAL = 128, SIDE = 16, RC = 16, LONG_POINTS = 1 << 16, TILE_ALTERNATIVES = 5, SPLIT_STEPS = 64 };

/* NVIDIA H200, the GPU bench/gpu_check.sh measures: 132 streaming
 * multiprocessors. A tile's 256 work-items are an eighth of what one
 * holds; 4 work-groups per unit (smaller micro-tiles where a kernel has
 * fewer tiles: 7x7 convolutions at batch 128, attention matmuls) leave
 * warps to hide memory latency and spread the last wave. Program parts
 * of 64 KiB of source: NVIDIA's compiler took 129 s for models/unet.lua's
 * train step as one program; its parts build on every core of the host. */
const cl_target cl_target_default = { 132, 4, 48 << 10, 1024, 64 << 10 };

/* The bytes of arguments a kernel may take: OpenCL's least
 * CL_DEVICE_MAX_PARAMETER_SIZE, so that the source builds on any device.
 * A buffer takes 8 (a pointer, or a temp's offset into the arena), the
 * arena and the scratch 8 each (kir_target.max_args). */
enum { MAX_ARG_BYTES = 1024 };

/* The lowering's thresholds on a GPU (kir_target, schedule.c). A
 * channels-last convolution's channels fill whole SIDE-wide tiles from
 * two tiles on; the partials of a weight gradient take up to 32 MiB, as
 * on a CPU. These are the values the H200 figures of docs/performance.md
 * were measured with (they were the CPU's then); not tuned on a GPU. */
void cl_kir_target(const cl_target *t, kir_target *kt)
{
	*kt = (kir_target){ .name = "opencl", .lanes = 1, .cores = t->compute_units,
	                    .local_bytes = t->local_bytes, .max_group = t->max_group,
	                    .channels_last_min = 2 * SIDE, .channels_last_step = SIDE,
	                    .partials_max_bytes = 32 << 20, .max_args = MAX_ARG_BYTES / 8 - 2 };
}

typedef enum { SHAPE_POINT, SHAPE_GROUP, SHAPE_TILE } kernel_shape;

/* A variant (cl_launch) as the renderer's choice overridden: a tile's
 * micro-tile (ma, mb), its staging without prefetch (plain) or its
 * vector reads (vec: each work-item's points of a side contiguous in
 * local memory, read as one vector), a point or group kernel's
 * work-group size (0: the renderer's), a reduction to one point in one
 * work-group (one) rather than split over many (split_groups). */
typedef struct {
	int ma, mb;
	int local;
	int plain;
	int vec;
	int one;
} variant_spec;

/* A batch segment's own names, so that segments which compute alike are
 * written once (render_batch): expressions x<n> and buffers p<n> numbered
 * in the order the text first names them. */
typedef struct {
	int *x;                 /* per expression: its number, or -1 */
	int nx;
	int *p;                 /* per kernel argument: its number, or -1 */
	int *arg;               /* per number: the kernel argument */
	int np;
} local_names;

typedef struct {
	const kir_program *p;
	const kir_kernel *k;
	rt_strbuf *b;
	local_names *names;     /* NULL: expression indices, kernel arguments a<j> */
	uint32_t *vars;         /* per expression: the vars it depends on */
	unsigned char *uses_acc;        /* per expression: the accumulators it reads (bits) */
	char *done;             /* per expression: declared in the current scope */
	char *wide;             /* per expression: a random draw's element alone (kir_mark_elements) */
	int widening;           /* declaring such an expression: IDX is long in it */
	uint32_t red_vars;      /* the mask of the reduction's vars */
	int fa, fb;             /* tile: the factors of the reduced product */
	uint32_t va, vs;        /* tile: the domain vars only a reads, those both
	                           read (the batch); the rest are b's side */
	int ma, mb;             /* tile: points per work-item along a and b */
	const cl_target *t;
	const variant_spec *force;      /* NULL: the renderer's choice */
	kernel_shape shape;
	int local;              /* group: work-items per group */
	int64_t groups;         /* group, one point: the work-groups it is split over (1: none) */
} renderer;

static const char prelude[] =
	"/* Generated by ddpmc from the kernel IR: do not edit. */\n"
	"#ifdef cl_khr_fp64\n"
	"#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
	"typedef double bm_real;\n"
	"#define BM_TWO_PI 6.283185307179586476925286766559\n"
	"#else\n"
	"typedef float bm_real;\n"
	"#define BM_TWO_PI 6.283185307179586476925286766559f\n"
	"#endif\n"
	"\n"
	"/* max and min as the interpreter: NaN in either operand gives NaN, else\n"
	" * a where it is greater (less), else b; b tested for NaN, as the LLVM\n"
	" * backend does (LLVM 19 folds the form testing a wrongly for max(|x|, 0)). */\n"
	"float ddpm_max(float a, float b) { return isnan(b) ? b : !(a <= b) ? a : b; }\n"
	"float ddpm_min(float a, float b) { return isnan(b) ? b : !(a >= b) ? a : b; }\n"
	"\n"
	"/* f32 -> bf16 bits: ties to even, NaN stays a quiet NaN (rt_f32_to_bf16). */\n"
	"ushort ddpm_to_bf16(float x)\n"
	"{\n"
	"\tuint u = as_uint(x);\n"
	"\tif ((u & 0x7fffffffu) > 0x7f800000u)\n"
	"\t\treturn (ushort)((u >> 16) | 0x40u);\n"
	"\treturn (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);\n"
	"}\n"
	"float ddpm_from_bf16(ushort h) { return as_float((uint)h << 16); }\n"
	"float ddpm_round_bf16(float x) { return ddpm_from_bf16(ddpm_to_bf16(x)); }\n"
	"\n"
	"/* f16 storage: native half where the device has it, else the vload/vstore\n"
	" * builtins every OpenCL device has; f32 math either way, ties to even. */\n"
	"#ifdef cl_khr_fp16\n"
	"#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n"
	"#define DDPM_LOAD_HALF(p, i) ((float)(p)[i])\n"
	"#define DDPM_STORE_HALF(x, p, i) ((p)[i] = convert_half_rte(x))\n"
	"float ddpm_round_f16(float x) { return (float)convert_half_rte(x); }\n"
	"#else\n"
	"#define DDPM_LOAD_HALF(p, i) vload_half(i, p)\n"
	"#define DDPM_STORE_HALF(x, p, i) vstore_half_rte(x, i, p)\n"
	"float ddpm_round_f16(float x)\n"
	"{\n"
	"\tushort h;\n"
	"\tvstore_half_rte(x, 0, (half *)&h);\n"
	"\treturn vload_half(0, (const half *)&h);\n"
	"}\n"
	"#endif\n"
	"\n"
	"/* runtime/philox.h: element elem of stream (seed, step << 16 | stream). */\n"
	"float ddpm_uniform01(uint w) { return (float)((w >> 8) + 1u) * 0x1p-24f; }\n"
	"float ddpm_random(long elem, int seed, int step, uint stream, int normal)\n"
	"{\n"
	"\tulong q = (ulong)elem >> 2, s = ((ulong)(uint)step << 16) | (stream & 0xffffu);\n"
	"\tuint lane = (uint)elem & 3u;\n"
	"\tuint c0 = (uint)q, c1 = (uint)(q >> 32), c2 = (uint)s, c3 = (uint)(s >> 32);\n"
	"\tuint k0 = (uint)seed, k1 = 0;\n"
	"\tfor (int r = 0; r < 10; r++) {\n"
	"\t\tif (r) {\n"
	"\t\t\tk0 += 0x9E3779B9u;\n"
	"\t\t\tk1 += 0xBB67AE85u;\n"
	"\t\t}\n"
	"\t\tuint hi0 = mul_hi(c0, 0xD2511F53u), lo0 = c0 * 0xD2511F53u;\n"
	"\t\tuint hi1 = mul_hi(c2, 0xCD9E8D57u), lo1 = c2 * 0xCD9E8D57u;\n"
	"\t\tc0 = hi1 ^ c1 ^ k0;\n"
	"\t\tc1 = lo1;\n"
	"\t\tc2 = hi0 ^ c3 ^ k1;\n"
	"\t\tc3 = lo0;\n"
	"\t}\n"
	"\tif (!normal)\n"
	"\t\treturn ddpm_uniform01(lane == 0 ? c0 : lane == 1 ? c1 : lane == 2 ? c2 : c3);\n"
	"\tbm_real u1 = ddpm_uniform01(lane < 2 ? c0 : c2), u2 = ddpm_uniform01(lane < 2 ? c1 : c3);\n"
	"\tbm_real r = sqrt((bm_real)-2 * log(u1)), t = BM_TWO_PI * u2;\n"
	"\treturn (float)(lane & 1u ? r * sin(t) : r * cos(t));\n"
	"}\n";

/* --- names and types ---------------------------------------------------------- */

/* Type t's name; an index inside a random draw's element is long,
 * elsewhere the kernel's IDX. */
static const char *type_name(const renderer *r, kir_type t)
{
	return t == KT_F32 ? "float" : t == KT_I32 ? "int" : r->widening ? "long" : "IDX";
}

static const char *storage_name(rt_dtype dt)
{
	return dt == RT_F32 ? "float" : dt == RT_I32 ? "int" : dt == RT_F16 ? "half" : "ushort";
}

static int is_temp(const kir_program *p, int buf)
{
	return p->buf[buf].kind == KB_TEMP;
}

/* Expression i's name's number: its index, or its number in r->names. */
static int xid(renderer *r, int i)
{
	local_names *n = r->names;
	if (!n)
		return i;
	if (n->x[i] < 0)
		n->x[i] = n->nx++;
	return n->x[i];
}

/* Buffer buf's name: a<its argument>, or p<its number in r->names>. */
static void buf_name(renderer *r, int buf, char *out, size_t len)
{
	local_names *n = r->names;
	int a = kir_arg_of(r->k, buf);
	if (!n) {
		snprintf(out, len, "a%d", a);
		return;
	}
	if (n->p[a] < 0) {
		n->arg[n->np] = a;
		n->p[a] = n->np++;
	}
	snprintf(out, len, "p%d", n->p[a]);
}

/* The conversion of f32 to integer type t: saturating, NaN -> 0, as the
 * LLVM backend's fptosi.sat. An index converted from f32 is unbounded
 * (kir_index_within), so only a kernel indexing in long has one. */
static const char *saturate(const renderer *r, kir_type t)
{
	return t == KT_I32 ? "convert_int_sat" : r->widening ? "convert_long_sat" : "(IDX)convert_long_sat";
}

/* Expression i as type `to`: converted where its type differs, and an
 * index of the kernel's IDX widened inside a random draw's element. */
static void put_expr_ref(renderer *r, int i, kir_type to)
{
	kir_type from = r->k->x[i].type;
	int x = xid(r, i);
	if (from == KT_F32 && to != KT_F32)
		rt_sb_printf(r->b, "%s(x%d)", saturate(r, to), x);
	else if (from != to || (r->widening && to == KT_IDX && !r->wide[i]))
		rt_sb_printf(r->b, "((%s)(x%d))", type_name(r, to), x);
	else
		rt_sb_printf(r->b, "x%d", x);
}

static void put_const(const renderer *r, const kir_expr *e)
{
	rt_strbuf *b = r->b;
	if (e->type != KT_F32)
		rt_sb_printf(b, "(%s)%lld", type_name(r, e->type), (long long)e->value);
	else if (isnan(e->value))
		rt_sb_puts(b, "NAN");
	else if (isinf(e->value))
		rt_sb_puts(b, e->value > 0 ? "INFINITY" : "-INFINITY");
	else
		rt_sb_printf(b, "%af", (double)(float)e->value);
}

/* --- expressions ---------------------------------------------------------------- */

/* The C operator of a binary arithmetic or comparison op. */
static const char *infix(ir_opcode op)
{
	switch (op) {
	case OP_add: return "+";
	case OP_sub: return "-";
	case OP_mul: return "*";
	case OP_div: return "/";
	case OP_lt: return "<";
	case OP_le: return "<=";
	case OP_eq: return "==";
	case OP_neg: IR_CASES_TRANSC: case OP_abs: case OP_cast: case OP_max: case OP_min:
	case OP_select: IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(op);
}

static int is_const_nonzero(const kir_kernel *k, int i)
{
	return k->x[i].kind == KX_CONST && k->x[i].value != 0;
}

/* fn(a) */
static void put_call(renderer *r, const char *fn, int a)
{
	rt_sb_printf(r->b, "%s(", fn);
	put_expr_ref(r, a, KT_F32);
	rt_sb_puts(r->b, ")");
}

/* before a after */
static void put_around(renderer *r, const char *before, int a, const char *after)
{
	rt_sb_puts(r->b, before);
	put_expr_ref(r, a, KT_F32);
	rt_sb_puts(r->b, after);
}

static void put_infix(renderer *r, const kir_expr *e, kir_type t)
{
	put_expr_ref(r, e->a, t);
	rt_sb_printf(r->b, " %s ", infix(e->op));
	put_expr_ref(r, e->b, t);
}

/* An arithmetic op on f32 operands a, b. */
static void put_float_op(renderer *r, const kir_expr *e)
{
	switch (e->op) {
	case OP_exp: put_call(r, "exp", e->a); return;
	case OP_log: put_call(r, "log", e->a); return;
	case OP_sqrt: put_call(r, "sqrt", e->a); return;
	case OP_sin: put_call(r, "sin", e->a); return;
	case OP_cos: put_call(r, "cos", e->a); return;
	case OP_tanh: put_call(r, "tanh", e->a); return;
	case OP_abs: put_call(r, "fabs", e->a); return;
	case OP_neg: put_around(r, "-", e->a, ""); return;
	case OP_rsqrt: put_around(r, "1.0f / sqrt(", e->a, ")"); return;
	case OP_sigmoid: put_around(r, "1.0f / (1.0f + exp(-", e->a, "))"); return;
	case OP_add: case OP_sub: case OP_mul: case OP_div: put_infix(r, e, KT_F32); return;
	case OP_max: case OP_min:
		put_around(r, e->op == OP_max ? "ddpm_max(" : "ddpm_min(", e->a, ", ");
		put_around(r, "", e->b, ")");
		return;
	case OP_cast: case OP_lt: case OP_le: case OP_eq: case OP_select:       /* put_op's */
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(e->op);
}

/* An arithmetic op on integer operands of type t; the transcendental ones
 * go through f32 and back, as the LLVM backend does. */
static void put_int_op(renderer *r, const kir_expr *e)
{
	rt_strbuf *b = r->b;
	kir_type t = e->type;
	switch (e->op) {
	case OP_neg:
		rt_sb_puts(b, "-");
		put_expr_ref(r, e->a, t);
		return;
	case OP_abs: case OP_max: case OP_min:
		rt_sb_puts(b, "(");
		put_expr_ref(r, e->a, t);
		rt_sb_puts(b, e->op == OP_min ? " < " : " > ");
		if (e->op == OP_abs)
			rt_sb_puts(b, "0");
		else
			put_expr_ref(r, e->b, t);
		rt_sb_puts(b, " ? ");
		put_expr_ref(r, e->a, t);
		rt_sb_puts(b, " : ");
		if (e->op == OP_abs) {
			rt_sb_puts(b, "-");
			put_expr_ref(r, e->a, t);
		} else {
			put_expr_ref(r, e->b, t);
		}
		rt_sb_puts(b, ")");
		return;
	case OP_add: case OP_sub: case OP_mul:
		put_infix(r, e, t);
		return;
	case OP_div:            /* zero divisors become one (integer tensors) */
		put_expr_ref(r, e->a, t);
		rt_sb_puts(b, " / ");
		if (is_const_nonzero(r->k, e->b)) {
			put_expr_ref(r, e->b, t);
		} else {
			rt_sb_printf(b, "(x%d == 0 ? (%s)1 : ", xid(r, e->b), type_name(r, t));
			put_expr_ref(r, e->b, t);
			rt_sb_puts(b, ")");
		}
		return;
	IR_CASES_TRANSC: {
		kir_expr f = *e;
		f.type = KT_F32;
		rt_sb_printf(b, "%s(", saturate(r, t));
		put_float_op(r, &f);
		rt_sb_puts(b, ")");
		return;
	}
	case OP_cast: case OP_lt: case OP_le: case OP_eq: case OP_select:       /* put_op's */
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(e->op);
}

static kir_type wider(kir_type a, kir_type b)
{
	return a == KT_F32 || b == KT_F32 ? KT_F32 : a == KT_IDX || b == KT_IDX ? KT_IDX : KT_I32;
}

static void put_op(renderer *r, const kir_expr *e)
{
	const kir_expr *x = r->k->x;
	rt_strbuf *b = r->b;
	switch (e->op) {
	case OP_lt: case OP_le: case OP_eq: {
		kir_type w = wider(x[e->a].type, x[e->b].type);
		rt_sb_puts(b, "(");
		put_expr_ref(r, e->a, w);
		rt_sb_printf(b, " %s ", infix(e->op));
		put_expr_ref(r, e->b, w);
		rt_sb_printf(b, ") ? (%s)1 : (%s)0", type_name(r, e->type), type_name(r, e->type));
		return;
	}
	case OP_select:
		rt_sb_printf(b, "x%d != 0 ? ", xid(r, e->a));
		put_expr_ref(r, e->b, e->type);
		rt_sb_puts(b, " : ");
		put_expr_ref(r, e->c, e->type);
		return;
	case OP_cast:
		if (e->type == KT_F32 && e->round != RT_F32)
			rt_sb_puts(b, e->round == RT_BF16 ? "ddpm_round_bf16(" : "ddpm_round_f16(");
		put_expr_ref(r, e->a, e->type);
		if (e->type == KT_F32 && e->round != RT_F32)
			rt_sb_puts(b, ")");
		return;
	case OP_neg: IR_CASES_TRANSC: case OP_abs: case OP_add: case OP_sub: case OP_mul: case OP_div:
	case OP_max: case OP_min:
		if (e->type == KT_F32)
			put_float_op(r, e);
		else
			put_int_op(r, e);
		return;
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(e->op);
}

static void put_load(renderer *r, const kir_expr *e)
{
	rt_dtype dt = r->p->buf[e->buf].dtype;
	char a[16];
	buf_name(r, e->buf, a, sizeof a);
	if (dt == RT_F16)
		rt_sb_printf(r->b, "DDPM_LOAD_HALF(%s, x%d)", a, xid(r, e->a));
	else if (dt == RT_BF16)
		rt_sb_printf(r->b, "ddpm_from_bf16(%s[x%d])", a, xid(r, e->a));
	else
		rt_sb_printf(r->b, "%s[x%d]", a, xid(r, e->a));
}

static int is_declared(void *ctx, int i)
{
	return ((renderer *)ctx)->done[i];
}

/* Declares expression i, whose operands are declared. */
static void declare(void *ctx, int i)
{
	renderer *r = ctx;
	const kir_expr *e = &r->k->x[i];
	r->done[i] = 1;
	r->widening = r->wide[i];
	rt_sb_printf(r->b, "\tconst %s x%d = ", type_name(r, e->type), xid(r, i));
	switch (e->kind) {
	case KX_CONST: put_const(r, e); break;
	case KX_VAR: rt_sb_printf(r->b, "v%d", e->var); break;
	case KX_LOAD: put_load(r, e); break;
	case KX_ACC: rt_sb_printf(r->b, "acc%d", e->acc); break;
	case KX_MOD: rt_sb_printf(r->b, "x%d %% x%d", xid(r, e->a), xid(r, e->b)); break;
	case KX_RANDOM:
		rt_sb_puts(r->b, "ddpm_random(");
		put_expr_ref(r, e->a, KT_IDX);
		rt_sb_puts(r->b, ", ");
		put_expr_ref(r, e->b, KT_I32);
		rt_sb_puts(r->b, ", ");
		put_expr_ref(r, e->c, KT_I32);
		rt_sb_printf(r->b, ", %uu, %d)", (unsigned)e->stream, e->op == OP_rng_normal);
		break;
	case KX_OP: put_op(r, e); break;
	}
	rt_sb_puts(r->b, ";\n");
	r->widening = 0;
}

/* Declares expression i (operands first) unless this scope has it. */
static void emit(renderer *r, int i)
{
	kir_walk(r->k, i, is_declared, declare, r);
}

/* Declares what the reduction loops do not change, ahead of them: an
 * operand of the reduced values or of the stores that neither depends on
 * a reduction var nor on an accumulator (nor do its operands, then). */
static void emit_invariant(renderer *r, int i)
{
	if (i >= 0 && !r->uses_acc[i] && !(r->vars[i] & r->red_vars))
		emit(r, i);
}

/* The stores of one place: inner == 0 after the reductions, j + 1 inside
 * accumulator j's loop. */
static void emit_stores(renderer *r, int inner)
{
	const kir_kernel *k = r->k;
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].inner == inner) {
			emit(r, k->st[s].index);
			emit(r, k->st[s].value);
		}
	for (int s = 0; s < k->nst; s++) {
		const kir_store *st = &k->st[s];
		if (st->inner != inner)
			continue;
		rt_dtype dt = r->p->buf[st->buf].dtype;
		kir_type from = k->x[st->value].type;
		int value = xid(r, st->value), index = xid(r, st->index);
		char a[16];
		buf_name(r, st->buf, a, sizeof a);
		if (dt == RT_F16) {
			rt_sb_printf(r->b, "\tDDPM_STORE_HALF(x%d, %s, x%d);\n", value, a, index);
		} else if (dt == RT_BF16) {
			rt_sb_printf(r->b, "\t%s[x%d] = ddpm_to_bf16(x%d);\n", a, index, value);
		} else if (dt == RT_I32 && from == KT_F32) {   /* rt_store: half away from zero */
			rt_sb_printf(r->b, "\t%s[x%d] = convert_int_sat(round(x%d));\n", a, index, value);
		} else {
			rt_sb_printf(r->b, "\t%s[x%d] = ", a, index);
			put_expr_ref(r, st->value, kir_type_of(dt));
			rt_sb_puts(r->b, ";\n");
		}
	}
}

/* --- dependencies -------------------------------------------------------------- */

static void analyse(renderer *r)
{
	const kir_kernel *k = r->k;
	for (int i = 0; i < k->nx; i++) {
		const kir_expr *e = &k->x[i];
		uint32_t v = e->kind == KX_VAR ? 1u << e->var : 0;
		unsigned char acc = e->kind == KX_ACC ? (unsigned char)(1u << e->acc) : 0;
		const int ops[3] = { e->a, e->b, e->c };
		for (int o = 0; o < 3; o++)
			if (ops[o] >= 0) {
				v |= r->vars[ops[o]];
				acc |= r->uses_acc[ops[o]];
			}
		r->vars[i] = v;
		r->uses_acc[i] = acc;
	}
	r->red_vars = 0;
	for (int v = k->rank; v < k->rank + k->nred; v++)
		r->red_vars |= 1u << v;
	for (int s = 0; s < k->nseg && kir_is_joint(k); s++)
		for (int v = 0; v < k->seg[s].nred; v++)
			r->red_vars |= 1u << (k->rank + v);
}

static int64_t product(const int64_t *ext, int from, int to)
{
	int64_t n = 1;
	for (int v = from; v < to; v++)
		n *= ext[v];
	return n;
}

/* A kernel's work-items in the point shape: a batch's, its segments'. */
static int64_t points_of(const kir_kernel *k)
{
	int64_t n = 0;
	for (int s = 0; s < k->nseg && kir_is_batch(k); s++) {
		kir_kernel v = kir_segment_view(k, s);
		n += points_of(&v);
	}
	return kir_is_batch(k) ? n : product(k->ext, 0, k->rank);
}

static int64_t red_points_of(const kir_kernel *k)
{
	return k->nred ? product(k->ext, k->rank, k->rank + k->nred) : 0;
}

static int64_t count_of(const kir_kernel *k, uint32_t mask)
{
	int64_t n = 1;
	for (int v = 0; v < k->rank; v++)
		if (mask >> v & 1)
			n *= k->ext[v];
	return n;
}

/* Points per work-item along a side of n points. */
static int micro_tile(int64_t n)
{
	return n >= 4 * SIDE ? 4 : n >= 2 * SIDE ? 2 : 1;
}

/* Work-groups of a tile shape: tiles of (SIDE ma) x (SIDE mb) points
 * over sides of na and nb points, for each of nbat batches. */
static int64_t tile_groups(int64_t na, int64_t nb, int64_t nbat, int ma, int mb)
{
	return (na + SIDE * ma - 1) / (SIDE * ma) * ((nb + SIDE * mb - 1) / (SIDE * mb)) * nbat;
}

/* The tile's b side: the domain vars neither a's side nor the batch. */
static uint32_t side_b(const renderer *r)
{
	return ((1u << r->k->rank) - 1) & ~r->va & ~r->vs;
}

/* The tile's sides and batches, in points. */
static void tile_sides(const renderer *r, int64_t *na, int64_t *nb, int64_t *nbat)
{
	*na = count_of(r->k, r->va);
	*nb = count_of(r->k, side_b(r));
	*nbat = count_of(r->k, r->vs);
}

static int64_t target_groups(const cl_target *t)
{
	return (int64_t)t->compute_units * t->groups_per_unit;
}

/* Micro-tiles as large as the sides allow, then smaller until there are
 * the target's work-groups to spread over the GPU's compute units. */
static void pick_micro_tiles(renderer *r)
{
	int64_t na, nb, nbat;
	tile_sides(r, &na, &nb, &nbat);
	r->ma = micro_tile(na);
	r->mb = micro_tile(nb);
	while (tile_groups(na, nb, nbat, r->ma, r->mb) < target_groups(r->t) && (r->ma > 1 || r->mb > 1))
		*(r->ma >= r->mb ? &r->ma : &r->mb) /= 2;
	if (r->force && r->force->ma) {
		r->ma = r->force->ma;
		r->mb = r->force->mb;
	}
}

/* A contraction worth tiling: a sum of a*b over a long reduction, a and b
 * f32, a reading domain vars b does not, and both sides of the tile long
 * enough to fill it. b takes the last domain var (neighbouring work-items
 * then store neighbouring elements) unless both read it. */
static int find_tile(renderer *r)
{
	const kir_kernel *k = r->k;
	if (k->nacc != 1 || k->red_op[0] != OP_add || k->rank < 2 || red_points_of(k) < RC)
		return 0;
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].inner)
			return 0;
	const kir_expr *m = &k->x[k->red_value[0]];
	if (m->kind != KX_OP || m->op != OP_mul || m->type != KT_F32)
		return 0;
	uint32_t dom = (1u << k->rank) - 1;
	int a = m->a, b = m->b;
	if (r->vars[a] >> (k->rank - 1) & 1) {
		a = m->b;
		b = m->a;
	}
	uint32_t vs = r->vars[a] & r->vars[b] & dom, va = r->vars[a] & dom & ~vs;
	if (!va || k->x[a].type != KT_F32 || k->x[b].type != KT_F32 || r->uses_acc[a] || r->uses_acc[b] ||
	    count_of(k, va) < SIDE / 2 || count_of(k, dom & ~va & ~vs) < SIDE / 2)
		return 0;
	r->fa = a;
	r->fb = b;
	r->va = va;
	r->vs = vs;
	pick_micro_tiles(r);
	return 1;
}

/* A tile when the contraction has points enough for a tile of 16 x 16
 * per compute unit; else a long reduction is better split over a
 * work-group per point (under that many tiles would leave most of a GPU
 * idle, each work-item summing the whole reduction). A weight gradient
 * split into image blocks by the lowering has the blocks as the tile's
 * batches, so that its partials fill the GPU. */
static kernel_shape pick_shape(renderer *r)
{
	const kir_kernel *k = r->k;
	int64_t red = red_points_of(r->k), na, nb, nbat;
	if (find_tile(r)) {
		tile_sides(r, &na, &nb, &nbat);
		if (red < 4096 || tile_groups(na, nb, nbat, 1, 1) >= r->t->compute_units)
			return SHAPE_TILE;
	}
	if (red >= 4096 || (red >= 64 && points_of(k) < 16384))
		return SHAPE_GROUP;
	return SHAPE_POINT;
}

/* Work-items per group of a point or group kernel. */
static int kernel_local(const renderer *r)
{
	if (r->force && r->force->local)
		return r->force->local;
	if (r->shape == SHAPE_GROUP)
		return red_points_of(r->k) >= 4096 ? 256 : 64;
	return POINT_LOCAL;
}

/* Whether a term, or a store inside a reduction's loop, reads an
 * accumulator's total (a variance's mean, say), which a split group does
 * not have. The MSE loss's gradient, stored inside its sum's loop, reads
 * none: each of its points is in one group's share. */
static int reads_totals(const renderer *r)
{
	const kir_kernel *k = r->k;
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].inner && (r->uses_acc[k->st[s].value] || r->uses_acc[k->st[s].index]))
			return 1;
	for (int j = 0; j < k->nacc; j++) {
		if (!k->nseg && r->uses_acc[k->red_value[j]])
			return 1;
		for (int s = 0; s < k->nseg; s++)
			if (r->uses_acc[k->seg[s].red_value[j]])
				return 1;
	}
	return 0;
}

/* The work-groups a group kernel of one point (a loss, the optimizer's
 * global norm) is split over, L work-items each: enough for the target's
 * work-groups, with SPLIT_STEPS steps or more per work-item; 1 (one
 * work-group) where that leaves fewer than 2, or where terms read totals. */
static int64_t split_groups(const renderer *r, int L)
{
	if (r->shape != SHAPE_GROUP || points_of(r->k) != 1 || reads_totals(r) || (r->force && r->force->one))
		return 1;
	int64_t g = red_points_of(r->k) / ((int64_t)L * SPLIT_STEPS), most = target_groups(r->t);
	return g < 2 ? 1 : g < most ? g : most;
}

/* --- variants ---------------------------------------------------------------- */

static int log2_of(int m)
{
	return m >= 8 ? 3 : m >= 4 ? 2 : m >= 2 ? 1 : 0;
}

/* The largest micro-tile `tune` tries along a side of n points: 8 where
 * a tile of 128 points fits in the side (its local arrays then take
 * 2 x RC x 129 floats, 16.5 KiB: every GPU has 32 KiB or more). */
static int micro_cap(int64_t n)
{
	return n >= 8 * SIDE ? 8 : micro_tile(n);
}

static int tile_distance(const renderer *r, const variant_spec *v)
{
	return abs(log2_of(v->ma) - log2_of(r->ma)) + abs(log2_of(v->mb) - log2_of(r->mb));
}

/* Whether micro-tile v goes before w: nearer the renderer's choice (a
 * step is a factor of 2 along one side), then more points per work-item
 * (more reuse of what each stages), then longer along a. */
static int tile_before(const renderer *r, const variant_spec *v, const variant_spec *w)
{
	int dv = tile_distance(r, v), dw = tile_distance(r, w);
	if (dv != dw)
		return dv < dw;
	return v->ma * v->mb != w->ma * w->mb ? v->ma * v->mb > w->ma * w->mb : v->ma > w->ma;
}

/* A tile's other micro-tiles, the first max in tile_before's order. */
static int tile_alternatives(const renderer *r, variant_spec *out, int max)
{
	variant_spec all[16];
	int64_t na, nb, nbat;
	int n = 0;
	tile_sides(r, &na, &nb, &nbat);
	for (int ma = 1; ma <= micro_cap(na); ma *= 2)
		for (int mb = 1; mb <= micro_cap(nb); mb *= 2)
			if (ma != r->ma || mb != r->mb)
				all[n++] = (variant_spec){ ma, mb, 0, 0, 0, 0 };
	for (int i = 1; i < n; i++)     /* insertion sort: 15 at most */
		for (int j = i; j > 0 && tile_before(r, &all[j], &all[j - 1]); j--) {
			variant_spec t = all[j];
			all[j] = all[j - 1];
			all[j - 1] = t;
		}
	n = n < max ? n : max;
	memcpy(out, all, (size_t)n * sizeof *out);
	return n;
}

/* Half and twice the work-items per group, where a kernel has points
 * enough for the choice to matter (a point kernel) or work-items enough
 * per group to halve (a group kernel); and for a group kernel, the most
 * the device allows (a reduction to one point, the optimizer's global
 * norm, runs as one work-group: its warps hide its loads' latency). */
static int local_alternatives(const renderer *r, variant_spec *out)
{
	int L = kernel_local(r), most = L, n = 0;
	if (r->shape == SHAPE_POINT && points_of(r->k) < LONG_POINTS)
		return 0;
	if (r->shape == SHAPE_POINT || L > 32)
		out[n++] = (variant_spec){ 0, 0, L / 2, 0, 0, 0 };
	if (2 * L <= r->t->max_group)
		out[n++] = (variant_spec){ 0, 0, 2 * L, 0, 0, 0 };
	while (2 * most <= r->t->max_group)     /* a power of two: the tree halves it */
		most *= 2;
	if (r->shape == SHAPE_GROUP && most >= 4 * L)
		out[n++] = (variant_spec){ 0, 0, most, 0, 0, 0 };
	if (split_groups(r, L) > 1) {   /* in one work-group, as before the split */
		out[n++] = (variant_spec){ 0, 0, L, 0, 0, 1 };
		if (most > L)
			out[n++] = (variant_spec){ 0, 0, most, 0, 0, 1 };
	}
	return n;
}

static int stage_by_reduction(const renderer *r, int f, uint32_t side);

/* Whether a side's m points per work-item can be read as one vector:
 * two or more, in rows of a multiple of m (a side staged by reduction
 * steps has rows of n + 1). */
static int vector_side(int m, int by_reduction)
{
	return m >= 2 && !by_reduction;
}

/* Whether micro-tile (ma, mb) has a side read as one vector. */
static int reads_vectors(const renderer *r, int ma, int mb)
{
	return vector_side(ma, stage_by_reduction(r, r->fa, r->va)) ||
	       vector_side(mb, stage_by_reduction(r, r->fb, side_b(r)));
}

/* The variants `tune` may time besides the renderer's choice: a tile's
 * choice staged without prefetch and with vector reads, its other
 * micro-tiles, and those of 16 points or more with vector reads. */
static int alternatives(const renderer *r, variant_spec *out)
{
	if (r->shape != SHAPE_TILE)
		return local_alternatives(r, out);
	int n = 0;
	out[n++] = (variant_spec){ r->ma, r->mb, 0, 1, 0, 0 };
	if (reads_vectors(r, r->ma, r->mb))
		out[n++] = (variant_spec){ r->ma, r->mb, 0, 0, 1, 0 };
	int end = n + tile_alternatives(r, out + n, TILE_ALTERNATIVES), all = end;
	for (int i = n; i < end; i++)
		if (out[i].ma * out[i].mb >= 16 && reads_vectors(r, out[i].ma, out[i].mb))
			out[all++] = (variant_spec){ out[i].ma, out[i].mb, 0, 0, 1, 0 };
	return all;
}

/* Whether a variant is an OpenCL kernel of its own (a point kernel's
 * work-group size is only its launch's). */
static int has_own_source(const renderer *r)
{
	return r->shape != SHAPE_POINT;
}

/* --- kernel shapes --------------------------------------------------------------- */

/* Vars (those in mask, in order) from the row-major flat index `flat`
 * over their extents, into v<var><suffix>: declared unless `assign`
 * (then the caller declared them). */
static void decode_as(renderer *r, uint32_t mask, const char *flat, int assign, const char *suffix)
{
	const kir_kernel *k = r->k;
	int n = k->rank + k->nred;
	for (int v = 0; v < n; v++) {
		if (!(mask >> v & 1))
			continue;
		int64_t inner = 1;
		for (int w = v + 1; w < n; w++)
			if (mask >> w & 1)
				inner *= k->ext[w];
		rt_sb_printf(r->b, "\t%sv%d%s = ", assign ? "" : "const IDX ", v, suffix);
		if (inner > 1)
			rt_sb_printf(r->b, "(%s / %lld)", flat, (long long)inner);
		else
			rt_sb_printf(r->b, "%s", flat);
		int first = 1;
		for (int w = 0; w < v; w++)
			first &= !(mask >> w & 1);
		if (!first)
			rt_sb_printf(r->b, " %% %lld", (long long)k->ext[v]);
		rt_sb_puts(r->b, ";\n");
	}
}

static void decode(renderer *r, uint32_t mask, const char *flat)
{
	decode_as(r, mask, flat, 0, "");
}

static const char *identity(const kir_kernel *k, int j)
{
	return k->red_op[j] == OP_max ? "-INFINITY" : "0";
}

static void put_accumulate(renderer *r, int j, const char *into, const char *x)
{
	if (r->k->red_op[j] == OP_max)
		rt_sb_printf(r->b, "%s = ddpm_max(%s, %s);\n", into, into, x);
	else
		rt_sb_printf(r->b, "%s += %s;\n", into, x);
}

static const char *acc_type(renderer *r, int j)
{
	return type_name(r, r->k->x[r->k->red_value[j]].type);
}

/* Accumulator j's step for the current red vars, and the stores inside
 * its loop; declarations inside are scoped to the loop's body. */
static void emit_red_body(renderer *r, int j)
{
	char *saved = malloc((size_t)r->k->nx);
	memcpy(saved, r->done, (size_t)r->k->nx);
	emit(r, r->k->red_value[j]);
	char into[16], x[16];
	snprintf(into, sizeof into, "acc%d", j);
	snprintf(x, sizeof x, "x%d", xid(r, r->k->red_value[j]));
	rt_sb_puts(r->b, "\t");
	put_accumulate(r, j, into, x);
	emit_stores(r, j + 1);
	memcpy(r->done, saved, (size_t)r->k->nx);
	free(saved);
}

/* Calls f(r, j) for the kernel, or for each segment of a joint reduction
 * as r->k (accumulator j runs through them in turn). */
static void each_segment(renderer *r, int j, void (*f)(renderer *, int))
{
	const kir_kernel *k = r->k;
	if (!k->nseg)
		f(r, j);
	for (int s = 0; s < k->nseg; s++) {
		kir_kernel v = kir_segment_view(k, s);
		r->k = &v;
		f(r, j);
		r->k = k;
	}
}

static void emit_term_invariants(renderer *r, int j)
{
	emit_invariant(r, r->k->red_value[j]);
}

static void emit_invariants(renderer *r)
{
	const kir_kernel *k = r->k;
	for (int j = 0; j < k->nacc; j++)
		each_segment(r, j, emit_term_invariants);
	for (int s = 0; s < k->nst; s++) {
		emit_invariant(r, k->st[s].index);
		emit_invariant(r, k->st[s].value);
	}
}

/* Accumulator j's loops over the reduction, one work-item's. */
static void emit_point_loop(renderer *r, int j)
{
	const kir_kernel *k = r->k;
	for (int v = k->rank; v < k->rank + k->nred; v++)
		rt_sb_printf(r->b, "\tfor (IDX v%d = 0; v%d < %lld; v%d++)\n", v, v, (long long)k->ext[v], v);
	rt_sb_puts(r->b, "\t{\n");
	emit_red_body(r, j);
	rt_sb_puts(r->b, "\t}\n");
}

/* The body of one work-item at point `gid` (declared by the caller). */
static void emit_point(renderer *r, const char *gid)
{
	const kir_kernel *k = r->k;
	decode(r, (1u << k->rank) - 1, gid);
	emit_invariants(r);
	for (int j = 0; j < k->nacc; j++) {
		rt_sb_printf(r->b, "\t%s acc%d = %s;\n", acc_type(r, j), j, identity(k, j));
		each_segment(r, j, emit_point_loop);
	}
	emit_stores(r, 0);
}

/* A launch of one work-item per point, in work-groups of `local`. */
static void launch_points(cl_variant *l, int64_t points, int local)
{
	l->local = local;
	l->global = (points + local - 1) / local * local;
}

static void render_point(renderer *r, cl_variant *l)
{
	int64_t points = points_of(r->k);
	launch_points(l, points, kernel_local(r));
	rt_sb_printf(r->b, "\tconst IDX gid = get_global_id(0);\n\tif (gid >= %lld)\n\t\treturn;\n",
	             (long long)points);
	emit_point(r, "gid");
}

/* A batch: one work-item per point of the segments one after the other.
 * Segments that compute alike (the optimizer's update of every parameter
 * of one shape) are one form, written once: each of its segments' ranges
 * picks the point in the segment and the segment's buffers (p<n>), then
 * the form's code runs, in a scope of its own. */
typedef struct {
	rt_strbuf decl;         /* the form's buffers p<n> */
	rt_strbuf code;         /* one point's code, names local (local_names) */
	rt_strbuf pick;         /* per segment: its range, point and buffers */
} batch_form;

/* Segment v's form into f (its pick aside), r->names its names. */
static void render_form(renderer *r, const kir_kernel *v, batch_form *f)
{
	const kir_kernel *k = r->k;
	rt_strbuf *out = r->b;
	local_names *n = r->names;
	memset(n->x, -1, (size_t)k->nx * sizeof *n->x);
	memset(n->p, -1, (size_t)k->narg * sizeof *n->p);
	n->nx = n->np = 0;
	memset(r->done, 0, (size_t)k->nx);
	r->k = v;
	r->b = &f->code;
	emit_point(r, "at");
	r->k = k;
	r->b = out;
	for (int j = 0; j < n->np; j++)
		rt_sb_printf(&f->decl, "\t__global %s *p%d = 0;\n",
		             storage_name(r->p->buf[k->arg[n->arg[j]]].dtype), j);
}

static int same_form(const batch_form *a, const batch_form *b)
{
	return a->decl.len == b->decl.len && a->code.len == b->code.len &&
	       !memcmp(a->decl.p, b->decl.p, a->decl.len) && !memcmp(a->code.p, b->code.p, a->code.len);
}

/* The form of segment v (points [start, start + points) of the batch):
 * found among form[0..*nform) or added; its pick gets the segment's. */
static void add_segment(renderer *r, const kir_kernel *v, int64_t start, batch_form *form, int *nform)
{
	batch_form f = { 0 };
	int i = 0;
	render_form(r, v, &f);
	while (i < *nform && !same_form(&form[i], &f))
		i++;
	if (i < *nform) {
		rt_sb_free(&f.decl);
		rt_sb_free(&f.code);
	} else {
		form[(*nform)++] = f;
	}
	rt_sb_printf(&form[i].pick, "\t%sif (gid >= %lld && gid < %lld) { at = gid - %lld;",
	             form[i].pick.len ? "else " : "", (long long)start, (long long)(start + points_of(v)),
	             (long long)start);
	for (int j = 0; j < r->names->np; j++)
		rt_sb_printf(&form[i].pick, " p%d = a%d;", j, r->names->arg[j]);
	rt_sb_puts(&form[i].pick, " }\n");
}

static void render_batch(renderer *r, cl_variant *l)
{
	const kir_kernel *k = r->k;
	batch_form *form = calloc((size_t)k->nseg + 1, sizeof *form);
	local_names n = { malloc(((size_t)k->nx + 1) * sizeof(int)), 0, malloc(((size_t)k->narg + 1) * sizeof(int)),
	                  malloc(((size_t)k->narg + 1) * sizeof(int)), 0 };
	int nform = 0;
	int64_t start = 0;
	if (form && n.x && n.p && n.arg) {
		r->names = &n;
		for (int s = 0; s < k->nseg; s++) {
			kir_kernel v = kir_segment_view(k, s);
			add_segment(r, &v, start, form, &nform);
			start += points_of(&v);
		}
		r->names = NULL;
	} else {
		r->b->oom = 1;
	}
	rt_sb_puts(r->b, "\tconst IDX gid = get_global_id(0);\n");
	for (int i = 0; i < nform; i++) {
		rt_sb_puts(r->b, "\t{\n\tIDX at = -1;\n");
		rt_sb_put(r->b, form[i].decl.p, form[i].decl.len);
		rt_sb_put(r->b, form[i].pick.p, form[i].pick.len);
		rt_sb_puts(r->b, "\tif (at >= 0) {\n");
		rt_sb_put(r->b, form[i].code.p, form[i].code.len);
		rt_sb_puts(r->b, "\treturn;\n\t}\n\t}\n");
		r->b->oom |= form[i].decl.oom | form[i].code.oom | form[i].pick.oom;
		rt_sb_free(&form[i].decl);
		rt_sb_free(&form[i].code);
		rt_sb_free(&form[i].pick);
	}
	free(form);
	free(n.x);
	free(n.p);
	free(n.arg);
	launch_points(l, points_of(k), kernel_local(r));
}

/* One work-item's stride over the reduction, L work-items apart (split:
 * its group's runs of L steps, every groups-th). */
static void emit_group_loop(renderer *r, int j)
{
	long long n = (long long)red_points_of(r->k);
	if (r->groups > 1)
		rt_sb_printf(r->b, "\tfor (IDX red = gid * %d + lid; red < %lld; red += %lld) {\n", r->local, n,
		             (long long)r->groups * r->local);
	else
		rt_sb_printf(r->b, "\tfor (IDX red = lid; red < %lld; red += %d) {\n", n, r->local);
	decode(r, r->red_vars, "red");
	emit_red_body(r, j);
	rt_sb_puts(r->b, "\t}\n");
}

/* acc<j> of every work-item summed by a tree in local memory; every
 * work-item ends with the work-group's total. */
static void emit_tree(renderer *r, int j, int L)
{
	rt_sb_printf(r->b, "\tpart%d[lid] = acc%d;\n\tbarrier(CLK_LOCAL_MEM_FENCE);\n", j, j);
	rt_sb_printf(r->b, "\tfor (int s = %d; s > 0; s >>= 1) {\n\t\tif (lid < s)\n\t\t\t", L / 2);
	char into[32], x[32];
	snprintf(into, sizeof into, "part%d[lid]", j);
	snprintf(x, sizeof x, "part%d[lid + s]", j);
	put_accumulate(r, j, into, x);
	rt_sb_printf(r->b, "\t\tbarrier(CLK_LOCAL_MEM_FENCE);\n\t}\n\tacc%d = part%d[0];\n", j, j);
}

/* Accumulator j over the work-group: each work-item strides over R (its
 * group's share of it when split), then the tree. */
static void emit_group_acc(renderer *r, int j, int L)
{
	rt_sb_printf(r->b, "\t%s acc%d = %s;\n", acc_type(r, j), j, identity(r->k, j));
	r->local = L;
	each_segment(r, j, emit_group_loop);
	emit_tree(r, j, L);
}

/* The scratch of a split reduction, in uints: the counter in 0 (1 pads
 * it to 8 bytes), then accumulator j's partials from partials_of(r, j),
 * 8 bytes a group; partials_of(r, nacc) is its size. */
static int64_t partials_of(const renderer *r, int j)
{
	return 2 + 2 * (int64_t)j * r->groups;
}

/* Accumulator j's partial of group g in the scratch, into out. */
static void partial_at(renderer *r, int j, const char *qualifier, const char *g, char *out, size_t len)
{
	snprintf(out, len, "((%s__global %s *)(scratch + %lld))[%s]", qualifier, acc_type(r, j),
	         (long long)partials_of(r, j), g);
}

/* The end of a split reduction: each group's totals into the scratch;
 * the group that counts itself last sums them in group order (work-item
 * lid takes groups lid, lid + L, ..., then the tree: the same order
 * whichever group is last), zeroes the counter for the next launch and
 * stores. */
static void emit_split_end(renderer *r, int L)
{
	const kir_kernel *k = r->k;
	char x[96], into[16];
	rt_sb_puts(r->b, "\tif (lid == 0) {\n");
	for (int j = 0; j < k->nacc; j++) {
		partial_at(r, j, "", "gid", x, sizeof x);
		rt_sb_printf(r->b, "\t\t%s = acc%d;\n", x, j);
	}
	rt_sb_printf(r->b, "\t\tmem_fence(CLK_GLOBAL_MEM_FENCE);\n\t\tlast = atomic_inc(scratch) == %lldu;\n\t}\n"
	             "\tbarrier(CLK_LOCAL_MEM_FENCE);\n\tif (!last)\n\t\treturn;\n"
	             "\tread_mem_fence(CLK_GLOBAL_MEM_FENCE);\n", (long long)r->groups - 1);
	for (int j = 0; j < k->nacc; j++) {
		rt_sb_printf(r->b, "\tacc%d = %s;\n\tfor (IDX g = lid; g < %lld; g += %d)\n\t\t", j, identity(k, j),
		             (long long)r->groups, L);
		partial_at(r, j, "volatile ", "g", x, sizeof x);
		snprintf(into, sizeof into, "acc%d", j);
		put_accumulate(r, j, into, x);
		emit_tree(r, j, L);
	}
	rt_sb_puts(r->b, "\tif (lid != 0)\n\t\treturn;\n\tscratch[0] = 0;\n");
}

static void render_group(renderer *r, cl_variant *l)
{
	const kir_kernel *k = r->k;
	int L = kernel_local(r);
	r->groups = split_groups(r, L);
	l->local = L;
	l->global = points_of(k) * L * r->groups;
	l->scratch = r->groups > 1 ? 4 * partials_of(r, k->nacc) : 0;
	for (int j = 0; j < k->nacc; j++)
		rt_sb_printf(r->b, "\t__local %s part%d[%d];\n", acc_type(r, j), j, L);
	if (r->groups > 1)
		rt_sb_puts(r->b, "\t__local int last;\n");
	rt_sb_puts(r->b, "\tconst IDX gid = get_group_id(0);\n\tconst int lid = get_local_id(0);\n");
	if (r->groups == 1)
		decode(r, (1u << k->rank) - 1, "gid");
	emit_invariants(r);
	for (int j = 0; j < k->nacc; j++)
		emit_group_acc(r, j, L);
	if (r->groups > 1)
		emit_split_end(r, L);
	else
		rt_sb_puts(r->b, "\tif (lid != 0)\n\t\treturn;\n");
	emit_stores(r, 0);
}

/* The innermost var of mask with more than one value, or -1. */
static int innermost(const kir_kernel *k, uint32_t mask)
{
	for (int v = k->rank + k->nred - 1; v >= 0; v--)
		if ((mask >> v & 1) && k->ext[v] > 1)
			return v;
	return -1;
}

/* The stride, in elements, of the f32 loads expression f reads along var
 * v, every var mid-range (where clamps do not bind): one for all of
 * them, else KIR_UNKNOWN. */
static int64_t load_stride(const kir_kernel *k, int f, int v)
{
	int64_t at[KIR_MAXVAR] = { 0 }, stride = KIR_UNKNOWN;
	size_t nx = (size_t)k->nx + 1;
	int64_t *base = malloc(nx * sizeof *base), *next = malloc(nx * sizeof *next);
	int *todo = malloc(nx * sizeof *todo), n = 0, loads = 0;
	char *seen = calloc(nx, 1);
	if (base && next && todo && seen) {
		for (int w = 0; w < k->rank + k->nred; w++)
			at[w] = k->ext[w] / 2;
		kir_index_values(k, at, base);
		at[v]++;
		kir_index_values(k, at, next);
		todo[n++] = f;
		seen[f] = 1;
	}
	while (n > 0) {
		const kir_expr *e = &k->x[todo[--n]];
		if (e->kind == KX_LOAD && e->type == KT_F32) {
			int64_t x = base[e->a], y = next[e->a];
			int64_t d = x == KIR_UNKNOWN || y == KIR_UNKNOWN ? KIR_UNKNOWN : y - x;
			stride = loads++ == 0 || d == stride ? d : KIR_UNKNOWN;
			continue;
		}
		const int ops[3] = { e->a, e->b, e->c };
		for (int o = 0; o < 3; o++)
			if (ops[o] >= 0 && !seen[ops[o]]) {
				seen[ops[o]] = 1;
				todo[n++] = ops[o];
			}
	}
	free(base);
	free(next);
	free(todo);
	free(seen);
	return stride;
}

/* Of RC consecutive steps along var v, how many read factor f within
 * one run of 32 floats (128 bytes, a GPU's memory transaction): 1 when
 * they are farther apart, its loads differ or v does not move them. */
static int64_t run_of(const kir_kernel *k, int f, int v)
{
	if (v < 0)
		return 1;
	int64_t s = load_stride(k, f, v), n = k->ext[v] < RC ? k->ext[v] : RC;
	if (s == KIR_UNKNOWN || s == 0 || llabs(s) >= 32)
		return 1;
	s = llabs(s);
	return 32 / s < n ? 32 / s : n;
}

/* Whether factor f is staged reduction steps first: when neighbouring
 * reduction steps read nearer elements than neighbouring points of its
 * side (a weight gradient's image operand: the pixels of a row against
 * channel planes; a matmul's row-major left operand), so that
 * neighbouring work-items read neighbouring elements (coalesced loads). */
static int stage_by_reduction(const renderer *r, int f, uint32_t side)
{
	return run_of(r->k, f, innermost(r->k, r->red_vars)) > run_of(r->k, f, innermost(r->k, side));
}

/* A factor of the tile and how it is staged in local memory: per chunk
 * of RC reduction steps, element rr * pitch + i of array t<name> is the
 * factor at reduction step r0 + rr and point grp * n + i of its side.
 * The chunk's RC n = 256 m elements are the work-items' t = lid + 256 e,
 * e < m, as (rr, i) = (t / n, t % n), or (t % RC, t / RC) when staged by
 * reduction (then pitch is n + 1, so that its RC stores fall in
 * different local memory banks). n = 16 m divides 256, so a work-item's
 * i is the same for every e (or its rr is, by reduction), and its side
 * points are the same in every chunk: their vars are decoded once,
 * before the reduction loop, as v<var>_<name> (by reduction, one per e:
 * v<var>_<name>[e]). The loops over e are unrolled (#pragma unroll), so
 * that those arrays and the registers pf_<name>[e] stay in registers. */
typedef struct {
	int f;                  /* the factor's expression */
	uint32_t side;          /* its side's vars */
	int n, pitch;
	int by_red;
	char name;              /* 'a' or 'b' */
	const char *grp;        /* the work-group's tile index along the side */
} staging;

static int stage_count(const staging *s)
{
	return RC * s->n / (SIDE * SIDE);
}

/* Work-item lid's point of the side for element e, as an expression. */
static void put_side_point(rt_strbuf *b, const staging *s)
{
	if (s->by_red)
		rt_sb_printf(b, "lid / %d + e * %d", RC, SIDE * SIDE / RC);
	else
		rt_sb_printf(b, "lid %% %d", s->n);
}

/* Work-item lid's reduction step for element e, as an expression. */
static void put_step(rt_strbuf *b, const staging *s)
{
	if (s->by_red)
		rt_sb_printf(b, "lid %% %d", RC);
	else
		rt_sb_printf(b, "lid / %d + e * %d", s->n, SIDE * SIDE / s->n);
}

static void open_element_loop(renderer *r, const staging *s)
{
	rt_sb_printf(r->b, "\t#pragma unroll\n\tfor (int e = 0; e < %d; e++) {\n", stage_count(s));
}

/* Before the reduction loop: the side points' indices and vars. */
static void stage_setup(renderer *r, const staging *s)
{
	const kir_kernel *k = r->k;
	char flat[16], suffix[16];
	snprintf(flat, sizeof flat, s->by_red ? "side_%c[e]" : "side_%c", s->name);
	snprintf(suffix, sizeof suffix, s->by_red ? "_%c[e]" : "_%c", s->name);
	if (!s->by_red) {
		rt_sb_printf(r->b, "\tconst IDX %s = %s * %d + ", flat, s->grp, s->n);
		put_side_point(r->b, s);
		rt_sb_puts(r->b, ";\n");
		decode_as(r, s->side, flat, 0, suffix);
		return;
	}
	rt_sb_printf(r->b, "\tIDX side_%c[%d]", s->name, stage_count(s));
	for (int v = 0; v < k->rank; v++)
		if (s->side >> v & 1)
			rt_sb_printf(r->b, ", v%d_%c[%d]", v, s->name, stage_count(s));
	rt_sb_puts(r->b, ";\n");
	open_element_loop(r, s);
	rt_sb_printf(r->b, "\t%s = %s * %d + ", flat, s->grp, s->n);
	put_side_point(r->b, s);
	rt_sb_puts(r->b, ";\n");
	decode_as(r, s->side, flat, 1, suffix);
	rt_sb_puts(r->b, "\t}\n");
}

/* Element e of the chunk (red: declared before) into pf_<name>[e]. */
static void load_element(renderer *r, const staging *s)
{
	const kir_kernel *k = r->k;
	const char *at = s->by_red ? "[e]" : "";
	rt_sb_printf(r->b, "\tpf_%c[e] = 0;\n\tif (side_%c%s < %lld && red < %lld) {\n", s->name, s->name, at,
	             (long long)count_of(k, s->side), (long long)red_points_of(k));
	for (int v = 0; v < k->rank; v++)
		if (s->side >> v & 1)
			rt_sb_printf(r->b, "\tconst IDX v%d = v%d_%c%s;\n", v, v, s->name, at);
	memset(r->done, 0, (size_t)k->nx);
	emit(r, s->f);
	rt_sb_printf(r->b, "\tpf_%c[e] = x%d;\n\t}\n", s->name, xid(r, s->f));
}

/* Declares the index red of element e's reduction step in the chunk
 * starting at `chunk`, and the reduction's vars. */
static void load_step(renderer *r, const staging *s, const char *chunk)
{
	rt_sb_printf(r->b, "\tconst IDX red = %s + ", chunk);
	put_step(r->b, s);
	rt_sb_puts(r->b, ";\n");
	decode(r, r->red_vars, "red");
}

/* Loads the factor's elements of the chunk at `chunk` into registers: the
 * reduction step decoded per element, or once for all of them when
 * staged by reduction. */
static void stage_load(renderer *r, const staging *s, const char *chunk)
{
	rt_sb_puts(r->b, "\t{\n");
	if (s->by_red)
		load_step(r, s, chunk);
	open_element_loop(r, s);
	if (!s->by_red)
		load_step(r, s, chunk);
	load_element(r, s);
	rt_sb_puts(r->b, "\t}\n\t}\n");
}

/* The registers into the factor's local array. */
static void stage_store(renderer *r, const staging *s)
{
	open_element_loop(r, s);
	rt_sb_printf(r->b, "\tt%c[(", s->name);
	put_step(r->b, s);
	rt_sb_printf(r->b, ") * %d + ", s->pitch);
	put_side_point(r->b, s);
	rt_sb_printf(r->b, "] = pf_%c[e];\n\t}\n", s->name);
}

static void declare_registers(renderer *r, const staging *s)
{
	rt_sb_printf(r->b, "\tfloat pf_%c[%d];\n", s->name, stage_count(s));
}

/* The reduction loop's head, up to where the work-group computes on the
 * chunk at r0 in local memory: each chunk is loaded into registers, then
 * stored there. With prefetch (unless the variant is plain) the loop
 * starts a chunk early and loads the next chunk after storing this one,
 * so that its loads are in flight while the work-group computes (the
 * loads are written once; r0 is the same for the whole work-group, so
 * the barriers inside its branches are reached by all). */
static void emit_loop_head(renderer *r, const staging *sa, const staging *sb, int prefetch)
{
	long long steps = (long long)red_points_of(r->k);
	char next[32];
	snprintf(next, sizeof next, "(r0 + %d)", RC);
	declare_registers(r, sa);
	declare_registers(r, sb);
	rt_sb_printf(r->b, "\tfor (IDX r0 = %d; r0 < %lld; r0 += %d) {\n", prefetch ? -RC : 0, steps, RC);
	if (!prefetch) {
		stage_load(r, sa, "r0");
		stage_load(r, sb, "r0");
	}
	rt_sb_puts(r->b, prefetch ? "\tif (r0 >= 0) {\n" : "");
	stage_store(r, sa);
	stage_store(r, sb);
	rt_sb_puts(r->b, "\tbarrier(CLK_LOCAL_MEM_FENCE);\n");
	if (prefetch) {
		rt_sb_printf(r->b, "\t}\n\tif (r0 + %d < %lld) {\n", RC, steps);
		stage_load(r, sa, next);
		stage_load(r, sb, next);
		rt_sb_puts(r->b, "\t}\n\tif (r0 >= 0) {\n");
	}
}

/* Into <name>v[0..m) (av or bv) a work-item's m points of side t<name>
 * at step rr: its own point l<name> and every SIDE-th after it, or
 * (vector) m contiguous points from its m * l<name>-th, one vector load
 * (the rows a multiple of m long and t<name> aligned). */
static void put_tile_reads(rt_strbuf *b, char name, int m, int pitch, int vector)
{
	char i = name == 'a' ? 'i' : 'j';
	if (!vector) {
		rt_sb_printf(b, "\t\tfor (int %c = 0; %c < %d; %c++)\n\t\t\t%cv[%c] = t%c[rr * %d + l%c + %d * %c];\n", i, i,
		             m, i, name, i, name, pitch, name, SIDE, i);
		return;
	}
	rt_sb_printf(b, "\t\t{\n\t\tconst float%d w = *(const __local float%d *)(t%c + rr * %d + l%c * %d);\n", m, m,
	             name, pitch, name, m);
	for (int k = 0; k < m; k++)
		rt_sb_printf(b, "\t\t%cv[%d] = w.s%d;\n", name, k, k);
	rt_sb_puts(b, "\t\t}\n");
}

/* The tile's point along side <name> of a work-item's point i of it. */
static void tile_point(char *out, size_t len, char name, int tile, int vector, int m)
{
	char i = name == 'a' ? 'i' : 'j';
	if (vector)
		snprintf(out, len, "g%c * %d + l%c * %d + %c", name, tile, name, m, i);
	else
		snprintf(out, len, "g%c * %d + l%c + %d * %c", name, tile, name, SIDE, i);
}

static void render_tile(renderer *r, cl_variant *l)
{
	const kir_kernel *k = r->k;
	uint32_t vb = side_b(r);
	int ta = SIDE * r->ma, tb = SIDE * r->mb;
	int64_t na, nb, nbat;
	tile_sides(r, &na, &nb, &nbat);
	int64_t ga = (na + ta - 1) / ta, gb = (nb + tb - 1) / tb;
	l->local = SIDE * SIDE;
	l->global = tile_groups(na, nb, nbat, r->ma, r->mb) * SIDE * SIDE;
	int ra = stage_by_reduction(r, r->fa, r->va), rb = stage_by_reduction(r, r->fb, vb);
	staging sa = { r->fa, r->va, ta, ta + ra, ra, 'a', "ga" }, sb = { r->fb, vb, tb, tb + rb, rb, 'b', "gb" };
	int vec = r->force && r->force->vec;
	int vec_a = vec && vector_side(r->ma, ra), vec_b = vec && vector_side(r->mb, rb);
	const char *aligned = " __attribute__((aligned(32)))";
	rt_sb_printf(r->b, "\t__local float ta[%d]%s, tb[%d]%s;\n", RC * sa.pitch, vec_a ? aligned : "",
	             RC * sb.pitch, vec_b ? aligned : "");
	rt_sb_printf(r->b, "\tconst int lid = get_local_id(0), la = lid / %d, lb = lid %% %d;\n"
	                   "\tconst IDX bat = get_group_id(0) / %lld, grp = get_group_id(0) %% %lld;\n"
	                   "\tconst IDX ga = grp / %lld, gb = grp %% %lld;\n", SIDE, SIDE, (long long)(ga * gb),
	             (long long)(ga * gb), (long long)gb, (long long)gb);
	decode(r, r->vs, "bat");
	stage_setup(r, &sa);
	stage_setup(r, &sb);
	rt_sb_printf(r->b, "\tfloat accs[%d][%d] = { { 0 } };\n", r->ma, r->mb);
	int prefetch = !(r->force && r->force->plain);
	emit_loop_head(r, &sa, &sb, prefetch);
	rt_sb_printf(r->b, "\tfor (int rr = 0; rr < %d; rr++) {\n\t\tfloat av[%d], bv[%d];\n", RC, r->ma, r->mb);
	put_tile_reads(r->b, 'a', r->ma, sa.pitch, vec_a);
	put_tile_reads(r->b, 'b', r->mb, sb.pitch, vec_b);
	rt_sb_printf(r->b, "\t\tfor (int i = 0; i < %d; i++)\n\t\t\tfor (int j = 0; j < %d; j++)\n"
	                   "\t\t\t\taccs[i][j] += av[i] * bv[j];\n\t}\n"
	                   "\tbarrier(CLK_LOCAL_MEM_FENCE);\n\t}\n",
	             r->ma, r->mb);
	rt_sb_puts(r->b, prefetch ? "\t}\n" : "");
	char pa[64], pb[64];
	tile_point(pa, sizeof pa, 'a', ta, vec_a, r->ma);
	tile_point(pb, sizeof pb, 'b', tb, vec_b, r->mb);
	rt_sb_printf(r->b, "\tfor (int i = 0; i < %d; i++)\n\tfor (int j = 0; j < %d; j++) {\n"
	                   "\tconst IDX ia = %s, ib = %s;\n"
	                   "\tif (ia >= %lld || ib >= %lld)\n\t\tcontinue;\n"
	                   "\tconst float acc0 = accs[i][j];\n",
	             r->ma, r->mb, pa, pb, (long long)na, (long long)nb);
	memset(r->done, 0, (size_t)k->nx);
	decode(r, r->va, "ia");
	decode(r, vb, "ib");
	emit_stores(r, 0);
	rt_sb_puts(r->b, "\t}\n");
}

/* --- kernels ------------------------------------------------------------------- */

/* A kernel's parameters after its name, and the start of its body: the
 * arena, then k's buffers in the order of kir_set_args as a<j>: a temp's
 * as its byte offset o<j> into the arena (so that kernels which differ
 * only in where the plan put their temps are one kernel), any other as a
 * pointer. */
static void put_params(rt_strbuf *b, const kir_program *p, const kir_kernel *k, int scratch)
{
	rt_sb_puts(b, "(__global uchar *arena");
	for (int j = 0; j < k->narg; j++)
		if (is_temp(p, k->arg[j]))
			rt_sb_printf(b, ", long o%d", j);
		else
			rt_sb_printf(b, ", __global %s *a%d", storage_name(p->buf[k->arg[j]].dtype), j);
	rt_sb_puts(b, scratch ? ", __global uint *scratch)\n{\n" : ")\n{\n");
	for (int j = 0; j < k->narg; j++)
		if (is_temp(p, k->arg[j])) {
			const char *t = storage_name(p->buf[k->arg[j]].dtype);
			rt_sb_printf(b, "\t__global %s *a%d = (__global %s *)(arena + o%d);\n", t, j, t, j);
		}
}

static void renderer_close(renderer *r)
{
	free(r->vars);
	free(r->uses_acc);
	free(r->done);
	free(r->wide);
}

/* A renderer of kernel k into b, its shape picked (force: a variant's
 * override); -1 when out of memory. */
static int renderer_open(renderer *r, const kir_program *p, const kir_kernel *k, const cl_target *t,
                         const variant_spec *force, rt_strbuf *b)
{
	size_t n = (size_t)k->nx + 1;
	*r = (renderer){ .p = p, .k = k, .b = b, .t = t, .force = force, .fa = -1, .fb = -1, .ma = 1, .mb = 1,
	                 .groups = 1 };
	r->vars = calloc(n, sizeof(uint32_t));
	r->uses_acc = calloc(n, 1);
	r->done = calloc(n, 1);
	r->wide = calloc(n, 1);
	if (!r->vars || !r->uses_acc || !r->done || !r->wide) {
		renderer_close(r);
		return -1;
	}
	kir_mark_elements(k, r->wide);
	analyse(r);
	r->shape = kir_is_batch(k) ? SHAPE_POINT : pick_shape(r);
	return 0;
}

/* Whether a kernel's indices may be int rather than long (64-bit
 * multiplication and division take several instructions on a GPU): its
 * own index expressions stay within int's range (kir_index_within), and
 * its reduction's length and (index_type) its launch's work-items within
 * INDEX_LIMIT, which bounds what the renderer counts itself (a
 * work-item's id, a reduction step, a tile's points padded to whole
 * tiles) with a factor of two to spare. Variants that launch the same
 * text in other work-groups round the work-items up by less than one
 * work-group more: inside that spare factor. */
static const int64_t INDEX_LIMIT = INT32_MAX / 2;

static int index_fits(const kir_kernel *k)
{
	return red_points_of(k) <= INDEX_LIMIT && kir_index_within(k, INT32_MIN, INT32_MAX);
}

static const char *index_type(int fits, const cl_variant *v)
{
	return fits && v->global <= INDEX_LIMIT ? "int" : "long";
}

/* Kernel k (its arguments set) as variant `force`, or the renderer's
 * choice, into b: its OpenCL C after the kernel's name, its index type
 * IDX declared first (fits: index_fits). Sets v's NDRange. */
static int render_variant(const kir_program *p, const kir_kernel *k, const cl_target *t,
                          const variant_spec *force, int fits, rt_strbuf *b, cl_variant *v)
{
	renderer r;
	rt_strbuf body = { 0 };
	if (renderer_open(&r, p, k, t, force, &body) < 0)
		return -1;
	if (kir_is_batch(k))
		render_batch(&r, v);
	else if (r.shape == SHAPE_TILE)
		render_tile(&r, v);
	else if (r.shape == SHAPE_GROUP)
		render_group(&r, v);
	else
		render_point(&r, v);
	renderer_close(&r);
	put_params(b, p, k, v->scratch > 0);
	rt_sb_printf(b, "\ttypedef %s IDX;\n", index_type(fits, v));
	rt_sb_put(b, body.p, body.len);
	rt_sb_puts(b, "}\n");
	b->oom |= body.oom;
	rt_sb_free(&body);
	return 0;
}

static void variant_suffix(char *out, size_t len, const variant_spec *s)
{
	if (s->local)
		snprintf(out, len, "_l%d%s", s->local, s->one ? "_one" : "");
	else
		snprintf(out, len, "_m%dx%d%s", s->ma, s->mb, s->plain ? "_plain" : s->vec ? "_vec" : "");
}

int cl_render_kernel(const kir_program *p, const kir_kernel *k, const cl_target *t, cl_kernel_text *out)
{
	renderer r;
	variant_spec spec[CL_MAX_VARIANTS];
	int fits = index_fits(k);
	*out = (cl_kernel_text){ .nv = 1 };
	if (render_variant(p, k, t, NULL, fits, &out->text, &out->v[0]) < 0 ||
	    renderer_open(&r, p, k, t, NULL, &out->text) < 0)
		return -1;
	int n = alternatives(&r, spec), own = has_own_source(&r);
	renderer_close(&r);
	out->at[1] = out->text.len;
	for (int j = 0; j < n; j++) {
		cl_variant *v = &out->v[out->nv++];
		if (!own) {
			launch_points(v, points_of(k), spec[j].local);
		} else {
			variant_suffix(out->suffix[j + 1], sizeof out->suffix[j + 1], &spec[j]);
			if (render_variant(p, k, t, &spec[j], fits, &out->text, v) < 0)
				return -1;
		}
		out->at[out->nv] = out->text.len;
	}
	return out->text.oom ? -1 : 0;
}

void cl_put_prelude(rt_strbuf *src)
{
	rt_sb_puts(src, prelude);
}

/* llvm_kernel: one kir kernel -> one LLVM function, the loop nest.
 *
 * requires: a verified kernel program (kir_verify).
 * establishes: a function void name(void **args, int64_t rb, int64_t re)
 *   (args: the kernel's buffers k->arg, kir_share)
 *   computing rows [rb, re) of the kernel exactly as kir_eval does, but for
 *   FMA contraction and the math library's error in exp/log/sin/cos/tanh.
 *
 *   for row r in [rb, re):                   coords of vars 0..rank-2 from r
 *     [register tile: the rows that differ only in tiled vars u1 and u2
 *      (nu1 x nu2 of them, "copies") run together, each value shared by
 *      the copies that agree on the tiled vars it depends on; a tiled var
 *      may also be the vector var: groups of full vectors]
 *     for x0 = 0, W, 2W, ... (full vectors), then one masked tail chunk:
 *       lane l is the point x = x0 + l of the last domain var
 *       for each accumulator j, in order (one loop nest each):
 *         acc[j][copy] = identity            one vector per copy
 *         for each reduction var (nested, in var order):
 *           acc[j][copy] = red_op[j](acc[j][copy], red_value[j])   lane-wise,
 *                                            in order: nothing is reassociated
 *                                            (but with one lane: sum_step)
 *           inner stores of accumulator j
 *       stores
 *
 * Values inside a chunk are uniform (one scalar for all lanes), affine
 * indices (lane l = base + l*stride; "exact" only while a run-time condition
 * holds, which is how clamps that do not bind stay affine) or plain vectors.
 * A load at an exact affine index of stride 1 is one vector load; at a
 * uniform index a scalar load; otherwise a gather. A clamped affine index
 * (conv padding) tests its condition at run time: vector load inside the
 * image, gather at its borders.
 *
 * Dtypes: loads widen F16/BF16 to f32, stores round to the buffer's dtype
 * (BF16 round-to-nearest-even on the bits as rt_f32_to_bf16, F16 by
 * fptrunc). Float to integer conversions truncate toward zero and saturate
 * (NaN -> 0, llvm.fptosi.sat); a float stored to an I32 buffer rounds half
 * away from zero first, as rt_store does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_internal.h"

enum { MAXCOPY = 32 };   /* copies in a register tile */
#define DEP_ACC (1u << 31)

/* A value of one expression inside a chunk. An affine index with an
 * `exact` condition came through clamps; when `bounded`, lane l is exactly
 * min(max(s + l*stride, lo), hi) (lo, hi: NULL for none). */
typedef struct {
	LLVMValueRef s;         /* uniform: the value; affine: lane 0's value */
	LLVMValueRef v;         /* the vector (made on demand for uniform and exact affine) */
	LLVMValueRef exact;     /* affine: i1 condition under which lanes are s + l*stride; NULL: always */
	LLVMValueRef lo, hi;    /* bounded: the clamp */
	int uni, aff, set, bounded;
	int64_t stride;
} lval;

typedef struct {
	LLVMContextRef C;
	LLVMModuleRef M;
	LLVMBuilderRef B;
	const kir_program *p;
	const kir_kernel *k;
	const llvm_target *tgt;         /* the CPU's facts: lanes, vector registers */
	int W;                          /* lanes */
	LLVMTypeRef i1, i16, i32, i64, f16, f32, f64, ptr;
	LLVMValueRef fn;
	LLVMValueRef *base;             /* per buffer: its base pointer */
	LLVMValueRef var[KIR_MAXVAR];   /* scalar values; the vector var's is lane 0's */
	int vvar, copy, ncopy;          /* copy c is (c % nu[0], c / nu[0]) */
	int uvar[2], nu[2];             /* tiled vars (-1: none) and their copies */
	LLVMValueRef uval[2][MAXCOPY];  /* the tiled vars' values by copy coordinate */
	LLVMValueRef mask;              /* active lanes of the tail chunk; NULL: all */
	int nact;
	LLVMValueRef acc[KIR_MAXACC][MAXCOPY];
	lval *cache[MAXCOPY];    /* per copy, per expression: copies 0..ncache-1 */
	int ncache;
	unsigned *dep;                  /* per expression: bit v = uses var v; DEP_ACC */
	unsigned char *inred;           /* per expression: bit j = used in accumulator j's loop */
	unsigned *near;                 /* per load: bit v = neighbours in var v are near in memory */
	unsigned char *transposed;      /* per load: read as rows of a transposed tile (find_transposed) */
	unsigned redmask;
} emitter;

static lval *emit(emitter *em, int i);

/* --- types and constants -------------------------------------------------- */

static int is_vec(LLVMValueRef x)
{
	return LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind;
}

/* The lanes for E elements: a power of two, at most max. */
static int lanes_for(int64_t E, int max)
{
	int w = 1;
	while (w < max && w < E)
		w *= 2;
	return w;
}

/* Scalar type t, or its W-lane vector when `like` is a vector. */
static LLVMTypeRef like(emitter *em, LLVMValueRef x, LLVMTypeRef t)
{
	return x && is_vec(x) ? LLVMVectorType(t, (unsigned)em->W) : t;
}

static LLVMTypeRef ktype(emitter *em, kir_type t)
{
	return t == KT_IDX ? em->i64 : t == KT_I32 ? em->i32 : em->f32;
}

static LLVMValueRef splat_const(emitter *em, LLVMValueRef c, int vec)
{
	if (!vec)
		return c;
	LLVMValueRef e[64];
	for (int l = 0; l < em->W; l++)
		e[l] = c;
	return LLVMConstVector(e, (unsigned)em->W);
}

/* Integer constant of scalar type t, splatted when vec. */
static LLVMValueRef kint(emitter *em, LLVMTypeRef t, int64_t v, int vec)
{
	return splat_const(em, LLVMConstInt(t, (unsigned long long)v, 1), vec);
}

static LLVMValueRef kreal(emitter *em, LLVMTypeRef t, double v, int vec)
{
	return splat_const(em, LLVMConstReal(t, v), vec);
}

static LLVMValueRef splat(emitter *em, LLVMValueRef s)
{
	if (LLVMIsConstant(s))
		return splat_const(em, s, 1);
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)em->W);
	LLVMValueRef v = LLVMBuildInsertElement(em->B, LLVMGetPoison(vt), s, LLVMConstInt(em->i32, 0, 0), "");
	return LLVMBuildShuffleVector(em->B, v, LLVMGetPoison(vt),
	                              LLVMConstNull(LLVMVectorType(em->i32, (unsigned)em->W)), "splat");
}

/* <0, k, 2k, ...> of scalar type t. */
static LLVMValueRef iota(emitter *em, LLVMTypeRef t, int64_t k)
{
	LLVMValueRef e[64];
	for (int l = 0; l < em->W; l++)
		e[l] = LLVMConstInt(t, (unsigned long long)(k * l), 1);
	return LLVMConstVector(e, (unsigned)em->W);
}

static LLVMValueRef all_true(emitter *em)
{
	return kint(em, em->i1, 1, 1);
}

static LLVMValueRef intrin(emitter *em, const char *name, LLVMTypeRef *ov, int nov,
                           LLVMValueRef *args, int nargs)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(em->M, id, ov, (size_t)nov);
	LLVMTypeRef ft = LLVMIntrinsicGetType(em->C, id, ov, (size_t)nov);
	return LLVMBuildCall2(em->B, ft, f, args, (unsigned)nargs, "");
}

static LLVMValueRef intrin1(emitter *em, const char *name, LLVMValueRef x)
{
	LLVMTypeRef t = LLVMTypeOf(x);
	return intrin(em, name, &t, 1, &x, 1);
}

/* A libm function of one argument (f32 or f64), lane by lane on vectors. */
static LLVMValueRef libm(emitter *em, const char *name, LLVMValueRef x)
{
	LLVMTypeRef t = is_vec(x) ? LLVMGetElementType(LLVMTypeOf(x)) : LLVMTypeOf(x);
	LLVMTypeRef ft = LLVMFunctionType(t, &t, 1, 0);
	LLVMValueRef f = LLVMGetNamedFunction(em->M, name);
	if (!f)
		f = LLVMAddFunction(em->M, name, ft);
	if (!is_vec(x))
		return LLVMBuildCall2(em->B, ft, f, &x, 1, "");
	LLVMValueRef r = LLVMGetPoison(LLVMTypeOf(x));
	for (int l = 0; l < em->W; l++) {
		LLVMValueRef li = LLVMConstInt(em->i32, (unsigned long long)l, 0);
		LLVMValueRef a = LLVMBuildExtractElement(em->B, x, li, "");
		r = LLVMBuildInsertElement(em->B, r, LLVMBuildCall2(em->B, ft, f, &a, 1, ""), li, "");
	}
	return r;
}

/* fadd/fsub/fmul may contract to FMA (the kernel IR allows it). */
static LLVMValueRef contract(LLVMValueRef x)
{
	if (LLVMIsAInstruction(x) && LLVMCanValueUseFastMathFlags(x))
		LLVMSetFastMathFlags(x, LLVMFastMathAllowContract);
	return x;
}

/* --- conversions ----------------------------------------------------------- */

/* Between compute types: ints to float exactly (sitofp), float to ints by
 * truncation toward zero, saturating with NaN -> 0; i64 <-> i32 wraps. */
static LLVMValueRef convert(emitter *em, LLVMValueRef x, kir_type from, kir_type to)
{
	if (from == to)
		return x;
	LLVMTypeRef dt = like(em, x, ktype(em, to));
	if (to == KT_F32)
		return LLVMBuildSIToFP(em->B, x, dt, "");
	if (from == KT_F32) {
		LLVMTypeRef ov[2] = { dt, LLVMTypeOf(x) };
		return intrin(em, "llvm.fptosi.sat", ov, 2, &x, 1);
	}
	return to == KT_IDX ? LLVMBuildSExt(em->B, x, dt, "") : LLVMBuildTrunc(em->B, x, dt, "");
}

static LLVMValueRef nonzero(emitter *em, LLVMValueRef x, kir_type t)
{
	if (t == KT_F32)
		return LLVMBuildFCmp(em->B, LLVMRealUNE, x, kreal(em, em->f32, 0, is_vec(x)), "");
	return LLVMBuildICmp(em->B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
}

static LLVMValueRef from_bool(emitter *em, LLVMValueRef b, kir_type t)
{
	LLVMTypeRef dt = like(em, b, ktype(em, t));
	return t == KT_F32 ? LLVMBuildUIToFP(em->B, b, dt, "") : LLVMBuildZExt(em->B, b, dt, "");
}

static LLVMTypeRef storage_type(emitter *em, rt_dtype dt)
{
	return dt == RT_F32 ? em->f32 : dt == RT_I32 ? em->i32 : em->i16;
}

static LLVMValueRef from_storage(emitter *em, LLVMValueRef x, rt_dtype dt)
{
	switch (dt) {
	case RT_F16:
		x = LLVMBuildBitCast(em->B, x, like(em, x, em->f16), "");
		return LLVMBuildFPExt(em->B, x, like(em, x, em->f32), "");
	case RT_BF16:
		x = LLVMBuildZExt(em->B, x, like(em, x, em->i32), "");
		x = LLVMBuildShl(em->B, x, kint(em, em->i32, 16, is_vec(x)), "");
		return LLVMBuildBitCast(em->B, x, like(em, x, em->f32), "");
	default:
		return x;
	}
}

/* f32 -> bf16 as rt_f32_to_bf16: NaN keeps its top bits and turns quiet;
 * otherwise add 0x7fff plus the lowest kept bit (ties to even). */
static LLVMValueRef to_bf16(emitter *em, LLVMValueRef x)
{
	int vec = is_vec(x);
	LLVMBuilderRef B = em->B;
	LLVMValueRef u = LLVMBuildBitCast(B, x, like(em, x, em->i32), "");
	LLVMValueRef mag = LLVMBuildAnd(B, u, kint(em, em->i32, 0x7fffffff, vec), "");
	LLVMValueRef nan = LLVMBuildICmp(B, LLVMIntUGT, mag, kint(em, em->i32, 0x7f800000, vec), "");
	LLVMValueRef hi = LLVMBuildLShr(B, u, kint(em, em->i32, 16, vec), "");
	LLVMValueRef qnan = LLVMBuildOr(B, hi, kint(em, em->i32, 0x40, vec), "");
	LLVMValueRef odd = LLVMBuildAnd(B, hi, kint(em, em->i32, 1, vec), "");
	LLVMValueRef r = LLVMBuildAdd(B, u, LLVMBuildAdd(B, odd, kint(em, em->i32, 0x7fff, vec), ""), "");
	r = LLVMBuildSelect(B, nan, qnan, LLVMBuildLShr(B, r, kint(em, em->i32, 16, vec), ""), "");
	return LLVMBuildTrunc(B, r, like(em, x, em->i16), "");
}

static LLVMValueRef to_storage(emitter *em, LLVMValueRef x, rt_dtype dt)
{
	switch (dt) {
	case RT_F16:
		x = LLVMBuildFPTrunc(em->B, x, like(em, x, em->f16), "");
		return LLVMBuildBitCast(em->B, x, like(em, x, em->i16), "");
	case RT_BF16:
		return to_bf16(em, x);
	default:
		return x;
	}
}

/* A value of type `from` as the compute type of a buffer of dtype dt; a
 * float stored to an int buffer rounds half away from zero (rt_store). */
static LLVMValueRef to_buffer_type(emitter *em, LLVMValueRef x, kir_type from, rt_dtype dt)
{
	kir_type to = kir_type_of(dt);
	if (from == KT_F32 && to == KT_I32)
		x = intrin1(em, "llvm.round", x);
	return convert(em, x, from, to);
}

/* --- arithmetic --------------------------------------------------------------- */

/* max/min as kir_eval: NaN in either operand gives NaN, else a where it
 * is greater (less), else b. Written as a where a > b or a is NaN, then b
 * where b is NaN: LLVM 19's InstCombine folds the other order (a where a
 * is NaN, then a > b ? a : b) wrongly when a is fabs(x) and b is 0, as
 * x > 0 ? |x| : 0 (test_llvm's random graphs found it: relu(abs(x))). */
static LLVMValueRef fminmax(emitter *em, ir_opcode op, LLVMValueRef a, LLVMValueRef b)
{
	LLVMValueRef pick = LLVMBuildFCmp(em->B, op == OP_max ? LLVMRealUGT : LLVMRealULT, a, b, "");
	LLVMValueRef r = LLVMBuildSelect(em->B, pick, a, b, "");
	return LLVMBuildSelect(em->B, LLVMBuildFCmp(em->B, LLVMRealUNO, b, b, ""), b, r, "");
}

static LLVMValueRef fma3(emitter *em, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
	LLVMTypeRef t = LLVMTypeOf(a);
	LLVMValueRef args[3] = { a, b, c };
	return intrin(em, "llvm.fma", &t, 1, args, 3);
}

/* 2^n for an f32 n in [-252, 256]: two powers built in the exponent
 * bits, multiplied in, so that subnormal and overflowing results round
 * as a single multiply would. */
static LLVMValueRef scale_by_pow2(emitter *em, LLVMValueRef p, LLVMValueRef n)
{
	LLVMBuilderRef B = em->B;
	int vec = is_vec(p);
	LLVMValueRef ni = LLVMBuildFPToSI(B, n, like(em, p, em->i32), "");
	LLVMValueRef half = LLVMBuildAShr(B, ni, kint(em, em->i32, 1, vec), "");
	LLVMValueRef parts[2] = { half, LLVMBuildSub(B, ni, half, "") };
	for (int i = 0; i < 2; i++) {
		LLVMValueRef e = LLVMBuildAdd(B, parts[i], kint(em, em->i32, 127, vec), "");
		e = LLVMBuildShl(B, e, kint(em, em->i32, 23, vec), "");
		p = LLVMBuildFMul(B, p, LLVMBuildBitCast(B, e, like(em, p, em->f32), ""), "");
	}
	return p;
}

/* e^x in f32 on scalars or vectors, inline (libm's expf would go lane by
 * lane): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for exactness),
 * e^r by Cephes' degree-7 polynomial (within 2 ulp of expf), times 2^n.
 * x is clamped to [-104, 89], where e^x already rounds to 0 or +inf; NaN
 * stays NaN. */
static LLVMValueRef vexp(emitter *em, LLVMValueRef x)
{
	static const double poly[] = { 1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
	                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1 };
	LLVMBuilderRef B = em->B;
	int vec = is_vec(x);
	LLVMTypeRef t = LLVMTypeOf(x);
	LLVMValueRef args[2] = { x, kreal(em, em->f32, -104, vec) };
	LLVMValueRef c = intrin(em, "llvm.maxnum", &t, 1, args, 2);
	args[0] = c, args[1] = kreal(em, em->f32, 89, vec);
	c = intrin(em, "llvm.minnum", &t, 1, args, 2);
	LLVMValueRef n = intrin1(em, "llvm.roundeven", LLVMBuildFMul(B, c, kreal(em, em->f32, 1.44269504088896341, vec), ""));
	LLVMValueRef r = fma3(em, n, kreal(em, em->f32, -0.693359375, vec), c);
	r = fma3(em, n, kreal(em, em->f32, 2.12194440e-4, vec), r);
	LLVMValueRef p = kreal(em, em->f32, poly[0], vec);
	for (int i = 1; i < 6; i++)
		p = fma3(em, p, r, kreal(em, em->f32, poly[i], vec));
	LLVMValueRef r2 = LLVMBuildFMul(B, r, r, "");
	p = fma3(em, p, r2, LLVMBuildFAdd(B, r, kreal(em, em->f32, 1, vec), ""));
	LLVMValueRef y = scale_by_pow2(em, p, n);
	return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUNO, x, x, ""), x, y, "");
}

static LLVMValueRef fop(emitter *em, ir_opcode op, LLVMValueRef a, LLVMValueRef b)
{
	LLVMBuilderRef B = em->B;
	LLVMValueRef one = kreal(em, em->f32, 1, is_vec(a));
	switch (op) {
	case OP_neg: return LLVMBuildFNeg(B, a, "");
	case OP_exp: return vexp(em, a);
	case OP_log: return libm(em, "logf", a);
	case OP_sqrt: return intrin1(em, "llvm.sqrt", a);
	case OP_rsqrt: return LLVMBuildFDiv(B, one, intrin1(em, "llvm.sqrt", a), "");
	case OP_sin: return libm(em, "sinf", a);
	case OP_cos: return libm(em, "cosf", a);
	case OP_tanh: return libm(em, "tanhf", a);
	case OP_sigmoid:
		return LLVMBuildFDiv(B, one, LLVMBuildFAdd(B, one, vexp(em, LLVMBuildFNeg(B, a, "")), ""), "");
	case OP_abs: return intrin1(em, "llvm.fabs", a);
	case OP_add: return contract(LLVMBuildFAdd(B, a, b, ""));
	case OP_sub: return contract(LLVMBuildFSub(B, a, b, ""));
	case OP_mul: return contract(LLVMBuildFMul(B, a, b, ""));
	case OP_div: return LLVMBuildFDiv(B, a, b, "");
	case OP_max: case OP_min: return fminmax(em, op, a, b);
	case OP_cast: case OP_lt: case OP_le: case OP_eq: case OP_select:      /* build_op's */
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(op);
}

static int const_int(LLVMValueRef s, int64_t *c)
{
	if (!LLVMIsAConstantInt(s))
		return 0;
	*c = LLVMConstIntGetSExtValue(s);
	return 1;
}

/* A divisor that cannot trap: zero becomes one (the kernel IR divides
 * indices by positive constants only; this guards integer tensors). */
static LLVMValueRef safe_divisor(emitter *em, LLVMValueRef b)
{
	int64_t c;
	if (const_int(b, &c) && c != 0)
		return b;
	LLVMTypeRef t = LLVMTypeOf(b);
	LLVMValueRef one = is_vec(b) ? kint(em, LLVMGetElementType(t), 1, 1) : LLVMConstInt(t, 1, 0);
	LLVMValueRef zero = LLVMBuildICmp(em->B, LLVMIntEQ, b, LLVMConstNull(t), "");
	return LLVMBuildSelect(em->B, zero, one, b, "");
}

static LLVMValueRef iop(emitter *em, ir_opcode op, kir_type t, LLVMValueRef a, LLVMValueRef b)
{
	LLVMBuilderRef B = em->B;
	switch (op) {
	case OP_neg: return LLVMBuildNeg(B, a, "");
	case OP_abs:
		return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, LLVMConstNull(LLVMTypeOf(a)), ""),
		                       LLVMBuildNeg(B, a, ""), a, "");
	case OP_add: return LLVMBuildAdd(B, a, b, "");
	case OP_sub: return LLVMBuildSub(B, a, b, "");
	case OP_mul: return LLVMBuildMul(B, a, b, "");
	case OP_div: return LLVMBuildSDiv(B, a, safe_divisor(em, b), "");
	case OP_max: case OP_min:
		return LLVMBuildSelect(B, LLVMBuildICmp(B, op == OP_max ? LLVMIntSGT : LLVMIntSLT, a, b, ""), a, b, "");
	IR_CASES_TRANSC:        /* on integers: in f32, truncated back */
		return convert(em, fop(em, op, convert(em, a, t, KT_F32), b ? convert(em, b, t, KT_F32) : NULL),
		               KT_F32, t);
	case OP_cast: case OP_lt: case OP_le: case OP_eq: case OP_select:      /* build_op's */
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(op);
}

/* Any elementwise op on scalars or vectors; operands have types ta, tb, tc. */
static LLVMValueRef build_op(emitter *em, ir_opcode op, kir_type t, LLVMValueRef a, kir_type ta,
                             LLVMValueRef b, kir_type tb, LLVMValueRef c, kir_type tc)
{
	switch (op) {
	case OP_lt: case OP_le: case OP_eq: {
		kir_type w = ta == KT_F32 || tb == KT_F32 ? KT_F32 : ta == KT_IDX || tb == KT_IDX ? KT_IDX : KT_I32;
		a = convert(em, a, ta, w);
		b = convert(em, b, tb, w);
		LLVMValueRef r = w == KT_F32
		        ? LLVMBuildFCmp(em->B, op == OP_lt ? LLVMRealOLT : op == OP_le ? LLVMRealOLE : LLVMRealOEQ, a, b, "")
		        : LLVMBuildICmp(em->B, op == OP_lt ? LLVMIntSLT : op == OP_le ? LLVMIntSLE : LLVMIntEQ, a, b, "");
		return from_bool(em, r, t);
	}
	case OP_select:
		return LLVMBuildSelect(em->B, nonzero(em, a, ta), convert(em, b, tb, t), convert(em, c, tc, t), "");
	case OP_cast:
		return convert(em, a, ta, t);
	case OP_neg: IR_CASES_TRANSC: case OP_abs: case OP_add: case OP_sub: case OP_mul: case OP_div:
	case OP_max: case OP_min:
		a = convert(em, a, ta, t);
		b = b ? convert(em, b, tb, t) : NULL;
		return t == KT_F32 ? fop(em, op, a, b) : iop(em, op, t, a, b);
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(op);
}

/* --- values --------------------------------------------------------------------- */

static LLVMValueRef as_vec(emitter *em, lval *x)
{
	if (!x->v)
		x->v = x->uni ? splat(em, x->s)
		       : LLVMBuildAdd(em->B, splat(em, x->s), iota(em, em->i64, x->stride), "");
	return x->v;
}

static LLVMValueRef and_cond(emitter *em, LLVMValueRef a, LLVMValueRef b)
{
	return !a ? b : !b ? a : LLVMBuildAnd(em->B, a, b, "");
}

/* Affine form of an index operand: uniform is stride 0. */
static int affine_of(const lval *x, LLVMValueRef *s, int64_t *k, LLVMValueRef *ex)
{
	if (x->uni) {
		*s = x->s, *k = 0, *ex = NULL;
		return 1;
	}
	if (!x->aff)
		return 0;
	*s = x->s, *k = x->stride, *ex = x->exact;
	return 1;
}

static int bounds_known(const lval *x)
{
	return x->uni || !x->exact || x->bounded;
}

/* Carries clamp bounds through add/sub of a uniform, multiplication by a
 * positive constant, and one max then one min (lower.c's clamp). */
static void track_bounds(emitter *em, ir_opcode op, lval *a, lval *b, lval *r)
{
	LLVMBuilderRef B = em->B;
	int ba = a->lo || a->hi, bb = b->lo || b->hi;
	int64_t c;
	r->bounded = 0, r->lo = r->hi = NULL;
	if (!bounds_known(a) || !bounds_known(b) || (ba && bb))
		return;
	if (!ba && !bb) {
		r->bounded = op != OP_min && op != OP_max ? 1 : a->uni || b->uni;
		if (op == OP_min)
			r->hi = a->uni ? a->s : b->s;
		if (op == OP_max)
			r->lo = a->uni ? a->s : b->s;
		return;
	}
	lval *A = ba ? a : b, *U = ba ? b : a;
	if (!U->uni)
		return;
	switch (op) {
	case OP_add:
		r->lo = A->lo ? LLVMBuildAdd(B, A->lo, U->s, "") : NULL;
		r->hi = A->hi ? LLVMBuildAdd(B, A->hi, U->s, "") : NULL;
		break;
	case OP_sub:
		if (A != a)
			return;
		r->lo = A->lo ? LLVMBuildSub(B, A->lo, U->s, "") : NULL;
		r->hi = A->hi ? LLVMBuildSub(B, A->hi, U->s, "") : NULL;
		break;
	case OP_mul:
		if (!const_int(U->s, &c) || c <= 0)
			return;
		r->lo = A->lo ? LLVMBuildMul(B, A->lo, U->s, "") : NULL;
		r->hi = A->hi ? LLVMBuildMul(B, A->hi, U->s, "") : NULL;
		break;
	case OP_min:
		if (A->hi)
			return;
		r->lo = A->lo, r->hi = U->s;
		break;
	case OP_neg: IR_CASES_TRANSC: case OP_abs: case OP_cast: case OP_div: case OP_max: case OP_lt:
	case OP_le: case OP_eq: case OP_select: IR_CASES_NOT_ELEMWISE:
		return;                 /* bounds not carried */
	}
	r->bounded = 1;
}

/* add, sub, mul by a constant, and min/max against a uniform bound keep an
 * index affine; a bound makes it exact only while no active lane crosses it. */
static int try_affine(emitter *em, ir_opcode op, lval *a, lval *b, lval *r)
{
	LLVMBuilderRef B = em->B;
	LLVMValueRef sa, sb, ea, eb;
	int64_t ka, kb, c;
	if (!b || !affine_of(a, &sa, &ka, &ea) || !affine_of(b, &sb, &kb, &eb))
		return 0;
	switch (op) {
	case OP_add: r->s = LLVMBuildAdd(B, sa, sb, ""), r->stride = ka + kb; break;
	case OP_sub: r->s = LLVMBuildSub(B, sa, sb, ""), r->stride = ka - kb; break;
	case OP_mul:
		if (kb == 0 && !eb && const_int(sb, &c))
			r->s = LLVMBuildMul(B, sa, sb, ""), r->stride = ka * c;
		else if (ka == 0 && !ea && const_int(sa, &c))
			r->s = LLVMBuildMul(B, sa, sb, ""), r->stride = kb * c, ea = eb, eb = NULL;
		else
			return 0;
		break;
	case OP_min: case OP_max: {
		if ((ka == 0) == (kb == 0) || (ka == 0 ? ea : eb))
			return 0;
		LLVMValueRef s = ka ? sa : sb, u = ka ? sb : sa;
		int64_t k = ka ? ka : kb;
		/* min: the largest active lane stays <= u; max: the smallest >= u */
		int want_hi = op == OP_min;
		int64_t off = (want_hi == (k > 0)) ? (int64_t)(em->nact - 1) * k : 0;
		LLVMValueRef edge = LLVMBuildAdd(B, s, LLVMConstInt(em->i64, (unsigned long long)off, 1), "");
		LLVMValueRef ok = LLVMBuildICmp(B, want_hi ? LLVMIntSLE : LLVMIntSGE, edge, u, "");
		r->s = s, r->stride = k;
		ea = and_cond(em, ka ? ea : eb, ok), eb = NULL;
		break;
	}
	case OP_neg: IR_CASES_TRANSC: case OP_abs: case OP_cast: case OP_div: case OP_lt: case OP_le:
	case OP_eq: case OP_select: IR_CASES_NOT_ELEMWISE:
		return 0;               /* not affine */
	}
	r->exact = and_cond(em, ea, eb);
	r->aff = 1;
	track_bounds(em, op, a, b, r);
	if (r->stride == 0 && !r->exact)
		r->uni = 1, r->aff = 0;
	return 1;
}

/* lt/le/eq between exact affine indices: lane l compares l*(ka-kb) with
 * sb-sa, in i32 lanes after clamping the scalar side to a range that keeps
 * every lane's answer. */
static int try_affine_cmp(emitter *em, ir_opcode op, kir_type t, lval *a, lval *b, lval *r)
{
	LLVMValueRef sa, sb, ea, eb;
	int64_t ka, kb;
	if ((op != OP_lt && op != OP_le && op != OP_eq) || !affine_of(a, &sa, &ka, &ea) ||
	    !affine_of(b, &sb, &kb, &eb) || ea || eb)
		return 0;
	int64_t K = ka - kb, lim = (int64_t)em->W * (K < 0 ? -K : K) + 1;
	LLVMBuilderRef B = em->B;
	LLVMValueRef d = LLVMBuildSub(B, sb, sa, "");
	LLVMValueRef lo = LLVMConstInt(em->i64, (unsigned long long)-lim, 1), hi = LLVMConstInt(em->i64, (unsigned long long)lim, 1);
	d = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, d, lo, ""), lo, d, "");
	d = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, d, hi, ""), hi, d, "");
	LLVMValueRef dv = splat(em, LLVMBuildTrunc(B, d, em->i32, ""));
	LLVMValueRef cmp = LLVMBuildICmp(B, op == OP_lt ? LLVMIntSLT : op == OP_le ? LLVMIntSLE : LLVMIntEQ,
	                                 iota(em, em->i32, K), dv, "");
	r->v = from_bool(em, cmp, t);
	return 1;
}

static lval emit_op_value(emitter *em, const kir_expr *e);

/* A cast to f32 that stands for a store to f16/bf16 rounds like one. */
static lval emit_op(emitter *em, const kir_expr *e)
{
	lval r = emit_op_value(em, e);
	if (e->op != OP_cast || e->round == RT_F32)
		return r;
	if (r.uni)
		r.s = from_storage(em, to_storage(em, r.s, e->round), e->round);
	else {
		r.v = from_storage(em, to_storage(em, as_vec(em, &r), e->round), e->round);
		r.aff = 0;
	}
	return r;
}

static lval emit_op_value(emitter *em, const kir_expr *e)
{
	const kir_kernel *k = em->k;
	int ids[3] = { e->a, e->b, e->c };
	lval *o[3] = { NULL, NULL, NULL }, r = { 0 };
	kir_type ot[3] = { KT_F32, KT_F32, KT_F32 };
	int uni = 1;
	for (int j = 0; j < 3; j++)
		if (ids[j] >= 0) {
			o[j] = emit(em, ids[j]);
			ot[j] = k->x[ids[j]].type;
			uni &= o[j]->uni;
		}
	if (uni) {
		r.uni = 1;
		r.s = build_op(em, e->op, e->type, o[0]->s, ot[0], o[1] ? o[1]->s : NULL, ot[1],
		               o[2] ? o[2]->s : NULL, ot[2]);
		return r;
	}
	int idx_args = ot[0] == KT_IDX && (!o[1] || ot[1] == KT_IDX) && !o[2];
	if (idx_args && e->type == KT_IDX && try_affine(em, e->op, o[0], o[1], &r) && (r.uni || !r.exact))
		return r;
	if (idx_args && o[1] && try_affine_cmp(em, e->op, e->type, o[0], o[1], &r))
		return r;
	LLVMValueRef v[3] = { NULL, NULL, NULL };
	for (int j = 0; j < 3; j++)
		v[j] = o[j] ? as_vec(em, o[j]) : NULL;
	r.v = build_op(em, e->op, e->type, v[0], ot[0], v[1], ot[1], v[2], ot[2]);
	return r;
}

/* --- memory ------------------------------------------------------------------------ */

/* Element alignment of a storage type (f32, i32: 4; i16: 2). */
static unsigned align_of(emitter *em, LLVMTypeRef st)
{
	return st == em->i16 ? 2 : 4;
}

static LLVMValueRef vload(emitter *em, LLVMTypeRef st, LLVMValueRef ptr)
{
	LLVMTypeRef vt = LLVMVectorType(st, (unsigned)em->W);
	unsigned align = align_of(em, st);
	if (!em->mask) {
		LLVMValueRef x = LLVMBuildLoad2(em->B, vt, ptr, "");
		LLVMSetAlignment(x, align);
		return x;
	}
	LLVMTypeRef ov[2] = { vt, em->ptr };
	LLVMValueRef args[4] = { ptr, LLVMConstInt(em->i32, align, 0), em->mask, LLVMGetPoison(vt) };
	return intrin(em, "llvm.masked.load", ov, 2, args, 4);
}

static LLVMValueRef gather(emitter *em, LLVMTypeRef st, LLVMValueRef base, LLVMValueRef idx)
{
	LLVMTypeRef vt = LLVMVectorType(st, (unsigned)em->W);
	LLVMValueRef ptrs = LLVMBuildGEP2(em->B, st, base, &idx, 1, "");
	LLVMTypeRef ov[2] = { vt, LLVMTypeOf(ptrs) };
	LLVMValueRef args[4] = { ptrs, LLVMConstInt(em->i32, align_of(em, st), 0),
	                         em->mask ? em->mask : all_true(em), LLVMGetPoison(vt) };
	return intrin(em, "llvm.masked.gather", ov, 2, args, 4);
}

static LLVMValueRef element(emitter *em, LLVMTypeRef st, LLVMValueRef base, LLVMValueRef i)
{
	return LLVMBuildGEP2(em->B, st, base, &i, 1, "");
}

/* A clamped affine index: vector access while its condition holds, the
 * general (gather/scatter) path otherwise. Returns the phi of both
 * results (NULL for stores). */
typedef LLVMValueRef (*access_fn)(emitter *em, void *ctx, int fast);

static LLVMValueRef guarded(emitter *em, LLVMValueRef cond, access_fn f, void *ctx)
{
	LLVMBasicBlockRef fast = LLVMAppendBasicBlockInContext(em->C, em->fn, "vec");
	LLVMBasicBlockRef slow = LLVMAppendBasicBlockInContext(em->C, em->fn, "gather");
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(em->C, em->fn, "join");
	LLVMBuildCondBr(em->B, cond, fast, slow);
	LLVMPositionBuilderAtEnd(em->B, fast);
	LLVMValueRef a = f(em, ctx, 1);
	LLVMBasicBlockRef fast_end = LLVMGetInsertBlock(em->B);
	LLVMBuildBr(em->B, join);
	LLVMPositionBuilderAtEnd(em->B, slow);
	LLVMValueRef b = f(em, ctx, 0);
	LLVMBasicBlockRef slow_end = LLVMGetInsertBlock(em->B);
	LLVMBuildBr(em->B, join);
	LLVMPositionBuilderAtEnd(em->B, join);
	if (!a)
		return NULL;
	LLVMValueRef phi = LLVMBuildPhi(em->B, LLVMTypeOf(a), "");
	LLVMValueRef vals[2] = { a, b };
	LLVMBasicBlockRef blocks[2] = { fast_end, slow_end };
	LLVMAddIncoming(phi, vals, blocks, 2);
	return phi;
}

typedef struct {
	LLVMTypeRef st;
	LLVMValueRef base, value;
	lval *ix;
} access;

/* Lanes l with l `pred` d (d an i64 scalar), compared in i32 lanes after
 * clamping d to a range that keeps every lane's answer. */
static LLVMValueRef lanes_where(emitter *em, LLVMIntPredicate pred, LLVMValueRef d)
{
	LLVMBuilderRef B = em->B;
	LLVMValueRef lo = LLVMConstInt(em->i64, (unsigned long long)-(em->W + 1), 1);
	LLVMValueRef hi = LLVMConstInt(em->i64, (unsigned long long)(em->W + 1), 1);
	d = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, d, lo, ""), lo, d, "");
	d = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, d, hi, ""), hi, d, "");
	return LLVMBuildICmp(B, pred, iota(em, em->i32, 1), splat(em, LLVMBuildTrunc(B, d, em->i32, "")), "");
}

/* A load at min(max(s + l, lo), hi): a masked vector load of the lanes
 * inside the bounds, the two bound elements broadcast to the others (both
 * are elements the kernel IR may load: a clamp's bounds are in range). */
static LLVMValueRef clamped_load(emitter *em, access *a)
{
	LLVMBuilderRef B = em->B;
	lval *ix = a->ix;
	LLVMValueRef mid = em->mask ? em->mask : all_true(em), below = NULL, above = NULL;
	if (ix->lo) {
		below = lanes_where(em, LLVMIntSLT, LLVMBuildSub(B, ix->lo, ix->s, ""));
		mid = LLVMBuildAnd(B, mid, LLVMBuildNot(B, below, ""), "");
	}
	if (ix->hi) {
		above = lanes_where(em, LLVMIntSGT, LLVMBuildSub(B, ix->hi, ix->s, ""));
		mid = LLVMBuildAnd(B, mid, LLVMBuildNot(B, above, ""), "");
	}
	LLVMValueRef saved = em->mask;
	em->mask = mid;
	LLVMValueRef v = vload(em, a->st, element(em, a->st, a->base, ix->s));
	em->mask = saved;
	if (below) {
		LLVMValueRef at = ix->lo;
		if (ix->hi)
			at = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, ix->hi, at, ""), ix->hi, at, "");
		v = LLVMBuildSelect(B, below, splat(em, LLVMBuildLoad2(B, a->st, element(em, a->st, a->base, at), "")), v, "");
	}
	if (above)
		v = LLVMBuildSelect(B, above, splat(em, LLVMBuildLoad2(B, a->st, element(em, a->st, a->base, ix->hi), "")), v, "");
	return v;
}

static LLVMValueRef load_access(emitter *em, void *ctx, int fast)
{
	access *a = ctx;
	if (fast)
		return vload(em, a->st, element(em, a->st, a->base, a->ix->s));
	if (a->ix->aff && a->ix->stride == 1 && a->ix->exact && a->ix->bounded)
		return clamped_load(em, a);
	return gather(em, a->st, a->base, as_vec(em, a->ix));
}

/* Rows r[0..W-1] (a W x W tile, W a power of two) transposed in place:
 * round b swaps the off-diagonal b x b blocks of every 2b x 2b block, for
 * b = W/2, ..., 1 (two-vector shuffles: unpacks and lane permutes). */
static void transpose_rows(emitter *em, LLVMValueRef *r)
{
	int W = em->W;
	for (int b = W / 2; b >= 1; b /= 2)
		for (int i = 0; i < W; i++) {
			if (i & b)
				continue;
			LLVMValueRef lo[64], hi[64];
			for (int j = 0; j < W; j++) {
				lo[j] = LLVMConstInt(em->i32, (unsigned long long)(j & b ? W + j - b : j), 0);
				hi[j] = LLVMConstInt(em->i32, (unsigned long long)(j & b ? W + j : j + b), 0);
			}
			LLVMValueRef x = r[i], y = r[i + b];
			r[i] = LLVMBuildShuffleVector(em->B, x, y, LLVMConstVector(lo, (unsigned)W), "");
			r[i + b] = LLVMBuildShuffleVector(em->B, x, y, LLVMConstVector(hi, (unsigned)W), "");
		}
}

/* Transposed load i (find_transposed) for all W copies of the tiled var
 * at once: copy c reads at lane l element s + l S + c (s: copy 0's lane
 * 0; S: the vector var's stride), so lane l of every copy lies in one row
 * of W contiguous elements. W row loads (the active lanes' rows), one
 * transpose, and copy c's vector is row c. Fills every copy's cache entry. */
static lval transposed_load(emitter *em, int i, const access *a, rt_dtype dt)
{
	LLVMBuilderRef B = em->B;
	int W = em->W, c0 = em->copy % em->nu[0];
	LLVMValueRef first = LLVMBuildSub(B, a->ix->s, LLVMConstInt(em->i64, (unsigned long long)c0, 0), "");
	LLVMValueRef rows[64], mask = em->mask;
	em->mask = NULL;
	for (int l = 0; l < W; l++) {
		LLVMValueRef at = LLVMBuildAdd(B, first, LLVMConstInt(em->i64, (unsigned long long)(l * a->ix->stride), 1), "");
		rows[l] = l < em->nact ? vload(em, a->st, element(em, a->st, a->base, at))
		          : LLVMConstNull(LLVMVectorType(a->st, (unsigned)W));
	}
	em->mask = mask;
	transpose_rows(em, rows);
	for (int c = 0; c < W; c++)
		em->cache[c][i] = (lval){ .v = from_storage(em, rows[c], dt), .set = 1 };
	return em->cache[c0][i];
}

static lval emit_load(emitter *em, const kir_expr *e)
{
	rt_dtype dt = em->p->buf[e->buf].dtype;
	access a = { storage_type(em, dt), em->base[e->buf], NULL, emit(em, e->a) };
	lval r = { 0 };
	if (em->transposed[e - em->k->x] && em->uvar[0] >= 0 && a.ix->aff && !a.ix->exact)
		return transposed_load(em, (int)(e - em->k->x), &a, dt);
	if (a.ix->uni) {
		r.uni = 1;
		r.s = from_storage(em, LLVMBuildLoad2(em->B, a.st, element(em, a.st, a.base, a.ix->s), ""), dt);
		return r;
	}
	LLVMValueRef v;
	if (a.ix->aff && a.ix->stride == 1 && !a.ix->exact)
		v = load_access(em, &a, 1);
	else if (a.ix->aff && a.ix->stride == 1)
		v = guarded(em, a.ix->exact, load_access, &a);
	else
		v = load_access(em, &a, 0);
	r.v = from_storage(em, v, dt);
	return r;
}

static LLVMValueRef store_access(emitter *em, void *ctx, int fast)
{
	access *a = ctx;
	LLVMTypeRef st = a->st;
	unsigned align = align_of(em, st);
	if (fast && !em->mask) {
		LLVMValueRef s = LLVMBuildStore(em->B, a->value, element(em, st, a->base, a->ix->s));
		LLVMSetAlignment(s, align);
		return NULL;
	}
	LLVMValueRef p = fast ? element(em, st, a->base, a->ix->s)
	                      : LLVMBuildGEP2(em->B, st, a->base, (LLVMValueRef[]){ as_vec(em, a->ix) }, 1, "");
	LLVMTypeRef ov[2] = { LLVMTypeOf(a->value), LLVMTypeOf(p) };
	LLVMValueRef args[4] = { a->value, p, LLVMConstInt(em->i32, align, 0), em->mask ? em->mask : all_true(em) };
	intrin(em, fast ? "llvm.masked.store" : "llvm.masked.scatter", ov, 2, args, 4);
	return NULL;
}

static void emit_store(emitter *em, const kir_store *s)
{
	rt_dtype dt = em->p->buf[s->buf].dtype;
	lval *val = emit(em, s->value);
	access a = { storage_type(em, dt), em->base[s->buf], NULL, emit(em, s->index) };
	kir_type vt = em->k->x[s->value].type;
	if (a.ix->uni) {                /* every lane writes one place: the last active lane wins */
		LLVMValueRef x = val->uni ? val->s
		                 : LLVMBuildExtractElement(em->B, as_vec(em, val),
		                                           LLVMConstInt(em->i32, (unsigned)em->nact - 1, 0), "");
		x = to_storage(em, to_buffer_type(em, x, vt, dt), dt);
		LLVMBuildStore(em->B, x, element(em, a.st, a.base, a.ix->s));
		return;
	}
	a.value = to_storage(em, to_buffer_type(em, as_vec(em, val), vt, dt), dt);
	if (a.ix->aff && a.ix->stride == 1 && !a.ix->exact)
		store_access(em, &a, 1);
	else if (a.ix->aff && a.ix->stride == 1)
		guarded(em, a.ix->exact, store_access, &a);
	else
		store_access(em, &a, 0);
}

/* --- random numbers (runtime/philox.h, THE CONTRACT) ---------------------------- */

static LLVMValueRef mulhilo(emitter *em, LLVMValueRef c, uint32_t m, LLVMValueRef *lo)
{
	int vec = is_vec(c);
	LLVMValueRef p = LLVMBuildMul(em->B, LLVMBuildZExt(em->B, c, like(em, c, em->i64), ""),
	                              kint(em, em->i64, m, vec), "");
	*lo = LLVMBuildTrunc(em->B, p, like(em, c, em->i32), "");
	return LLVMBuildTrunc(em->B, LLVMBuildLShr(em->B, p, kint(em, em->i64, 32, vec), ""),
	                      like(em, c, em->i32), "");
}

/* Philox4x32-10 on ctr c[4] with key (k0, k1): in place. */
static void philox(emitter *em, LLVMValueRef c[4], LLVMValueRef k0, LLVMValueRef k1)
{
	LLVMBuilderRef B = em->B;
	int vec = is_vec(c[0]);
	for (int r = 0; r < 10; r++) {
		if (r) {
			k0 = LLVMBuildAdd(B, k0, kint(em, em->i32, 0x9E3779B9u, vec), "");
			k1 = LLVMBuildAdd(B, k1, kint(em, em->i32, 0xBB67AE85u, vec), "");
		}
		LLVMValueRef lo0, lo1;
		LLVMValueRef hi0 = mulhilo(em, c[0], 0xD2511F53u, &lo0);
		LLVMValueRef hi1 = mulhilo(em, c[2], 0xCD9E8D57u, &lo1);
		LLVMValueRef n0 = LLVMBuildXor(B, LLVMBuildXor(B, hi1, c[1], ""), k0, "");
		LLVMValueRef n2 = LLVMBuildXor(B, LLVMBuildXor(B, hi0, c[3], ""), k1, "");
		c[0] = n0, c[1] = lo1, c[2] = n2, c[3] = lo0;
	}
}

/* rt_u32_to_uniform: ((x >> 8) + 1) * 2^-24, exact in f32. */
static LLVMValueRef u32_to_uniform(emitter *em, LLVMValueRef x)
{
	int vec = is_vec(x);
	x = LLVMBuildAdd(em->B, LLVMBuildLShr(em->B, x, kint(em, em->i32, 8, vec), ""), kint(em, em->i32, 1, vec), "");
	x = LLVMBuildUIToFP(em->B, x, like(em, x, em->f32), "");
	return LLVMBuildFMul(em->B, x, kreal(em, em->f32, 0x1p-24, vec), "");
}

/* Box-Muller as rt_box_muller, in double: z = r cos(2 pi u2) on even
 * lanes of the pair, r sin(2 pi u2) on odd ones. */
static LLVMValueRef box_muller(emitter *em, LLVMValueRef a, LLVMValueRef b, LLVMValueRef odd)
{
	LLVMBuilderRef B = em->B;
	int vec = is_vec(a);
	LLVMTypeRef dt = like(em, a, em->f64);
	LLVMValueRef u1 = LLVMBuildFPExt(B, u32_to_uniform(em, a), dt, "");
	LLVMValueRef u2 = LLVMBuildFPExt(B, u32_to_uniform(em, b), dt, "");
	LLVMValueRef r = intrin1(em, "llvm.sqrt", LLVMBuildFMul(B, kreal(em, em->f64, -2.0, vec), libm(em, "log", u1), ""));
	LLVMValueRef t = LLVMBuildFMul(B, kreal(em, em->f64, 6.283185307179586476925286766559, vec), u2, "");
	LLVMValueRef z0 = LLVMBuildFMul(B, r, libm(em, "cos", t), "");
	LLVMValueRef z1 = LLVMBuildFMul(B, r, libm(em, "sin", t), "");
	return LLVMBuildFPTrunc(B, LLVMBuildSelect(B, odd, z1, z0, ""), like(em, a, em->f32), "");
}

/* The four words of Philox block q (i64, scalar or vector; seed and step
 * alike) of stream (seed, (uint32)step << 16 | stream). */
static void philox_block(emitter *em, LLVMValueRef q, int stream, LLVMValueRef seed, LLVMValueRef step,
                         LLVMValueRef c[4])
{
	LLVMBuilderRef B = em->B;
	int vec = is_vec(q);
	LLVMTypeRef t32 = like(em, q, em->i32);
	LLVMValueRef s64 = LLVMBuildShl(B, LLVMBuildZExt(B, step, like(em, q, em->i64), ""), kint(em, em->i64, 16, vec), "");
	s64 = LLVMBuildOr(B, s64, kint(em, em->i64, (uint16_t)stream, vec), "");
	c[0] = LLVMBuildTrunc(B, q, t32, "");
	c[1] = LLVMBuildTrunc(B, LLVMBuildLShr(B, q, kint(em, em->i64, 32, vec), ""), t32, "");
	c[2] = LLVMBuildTrunc(B, s64, t32, "");
	c[3] = LLVMBuildTrunc(B, LLVMBuildLShr(B, s64, kint(em, em->i64, 32, vec), ""), t32, "");
	philox(em, c, seed, kint(em, em->i32, 0, vec));
}

/* Element `elem` of stream (seed, (uint32)step << 16 | stream): word
 * elem % 4 of block elem / 4. */
static LLVMValueRef random_value(emitter *em, ir_opcode op, int stream, LLVMValueRef elem,
                                 LLVMValueRef seed, LLVMValueRef step)
{
	LLVMBuilderRef B = em->B;
	int vec = is_vec(elem);
	LLVMTypeRef t32 = like(em, elem, em->i32);
	LLVMValueRef lane = LLVMBuildTrunc(B, LLVMBuildAnd(B, elem, kint(em, em->i64, 3, vec), ""), t32, "");
	LLVMValueRef c[4];
	philox_block(em, LLVMBuildLShr(B, elem, kint(em, em->i64, 2, vec), ""), stream, seed, step, c);
	LLVMValueRef is[4];
	for (int l = 0; l < 4; l++)
		is[l] = LLVMBuildICmp(B, LLVMIntEQ, lane, kint(em, em->i32, l, vec), "");
	if (op == OP_rng_uniform) {
		LLVMValueRef w = LLVMBuildSelect(B, is[2], c[2], c[3], "");
		w = LLVMBuildSelect(B, is[1], c[1], w, "");
		return u32_to_uniform(em, LLVMBuildSelect(B, is[0], c[0], w, ""));
	}
	LLVMValueRef hi = LLVMBuildICmp(B, LLVMIntUGE, lane, kint(em, em->i32, 2, vec), "");
	LLVMValueRef odd = LLVMBuildICmp(B, LLVMIntNE, LLVMBuildAnd(B, lane, kint(em, em->i32, 1, vec), ""),
	                                 kint(em, em->i32, 0, vec), "");
	return box_muller(em, LLVMBuildSelect(B, hi, c[2], c[0], ""), LLVMBuildSelect(B, hi, c[3], c[1], ""), odd);
}

static LLVMValueRef shuffle(emitter *em, LLVMValueRef a, LLVMValueRef b, const int *mask, int n)
{
	LLVMValueRef m[256];
	for (int i = 0; i < n; i++)
		m[i] = LLVMConstInt(em->i32, (unsigned long long)mask[i], 0);
	return LLVMBuildShuffleVector(em->B, a, b, LLVMConstVector(m, (unsigned)n), "");
}

/* rng_uniform at elements e0 + l of lanes l < W: the G blocks those fall
 * in (W / 4 + 1, a power of two at least) computed once each, not a whole
 * block per lane, then lane l takes word (e0 + l) % 4 of its block. */
static LLVMValueRef uniform_run(emitter *em, int stream, LLVMValueRef e0, LLVMValueRef seed, LLVMValueRef step)
{
	LLVMBuilderRef B = em->B;
	int W = em->W, G = lanes_for(W / 4 + 1, 64), mask[256];
	em->W = G;              /* the vector helpers make G lanes for now */
	LLVMValueRef q = LLVMBuildAdd(B, splat(em, LLVMBuildLShr(B, e0, LLVMConstInt(em->i64, 2, 0), "")),
	                              iota(em, em->i64, 1), "");
	LLVMValueRef c[4];
	philox_block(em, q, stream, splat(em, seed), splat(em, step), c);
	em->W = W;
	for (int i = 0; i < 2 * G; i++)         /* words 0, 1 and words 2, 3 of each block, in turn */
		mask[i] = i % 2 * G + i / 2;
	LLVMValueRef lo = shuffle(em, c[0], c[1], mask, 2 * G), hi = shuffle(em, c[2], c[3], mask, 2 * G);
	for (int i = 0; i < 4 * G; i++)         /* all words, block by block */
		mask[i] = i % 4 < 2 ? i / 4 * 2 + i % 4 : 2 * G + i / 4 * 2 + i % 4 - 2;
	LLVMValueRef words = shuffle(em, lo, hi, mask, 4 * G), out = NULL;
	LLVMValueRef first = LLVMBuildTrunc(B, LLVMBuildAnd(B, e0, LLVMConstInt(em->i64, 3, 0), ""), em->i32, "");
	for (int r = 3; r >= 0; r--) {          /* lane l is word first + l */
		for (int l = 0; l < W; l++)
			mask[l] = r + l;
		LLVMValueRef at = shuffle(em, words, LLVMGetPoison(LLVMTypeOf(words)), mask, W);
		out = out ? LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, first, LLVMConstInt(em->i32, (unsigned long long)r, 0), ""),
		                            at, out, "")
		          : at;
	}
	return u32_to_uniform(em, out);
}

static lval emit_random(emitter *em, const kir_expr *e)
{
	const kir_expr *x = em->k->x;
	lval *o[3] = { emit(em, e->a), emit(em, e->b), emit(em, e->c) };
	lval r = { 0 };
	r.uni = o[0]->uni && o[1]->uni && o[2]->uni;
	if (!r.uni && e->op == OP_rng_uniform && o[0]->aff && o[0]->stride == 1 && !o[0]->exact && o[1]->uni &&
	    o[2]->uni && em->W >= 4) {
		LLVMValueRef e0 = convert(em, o[0]->s, x[e->a].type, KT_IDX);
		r.v = uniform_run(em, e->stream, e0, convert(em, o[1]->s, x[e->b].type, KT_I32),
		                  convert(em, o[2]->s, x[e->c].type, KT_I32));
		return r;
	}
	LLVMValueRef elem = r.uni ? o[0]->s : as_vec(em, o[0]);
	LLVMValueRef seed = r.uni ? o[1]->s : as_vec(em, o[1]);
	LLVMValueRef step = r.uni ? o[2]->s : as_vec(em, o[2]);
	elem = convert(em, elem, x[e->a].type, KT_IDX);
	seed = convert(em, seed, x[e->b].type, KT_I32);
	step = convert(em, step, x[e->c].type, KT_I32);
	LLVMValueRef v = random_value(em, e->op, e->stream, elem, seed, step);
	if (r.uni)
		r.s = v;
	else
		r.v = v;
	return r;
}

/* --- expressions ---------------------------------------------------------------------- */

static lval emit_expr(emitter *em, int i)
{
	const kir_expr *e = &em->k->x[i];
	lval r = { 0 };
	switch (e->kind) {
	case KX_CONST:
		r.uni = 1;
		r.s = e->type == KT_F32 ? LLVMConstReal(em->f32, e->value)
		      : LLVMConstInt(ktype(em, e->type), (unsigned long long)(int64_t)e->value, 1);
		return r;
	case KX_VAR:
		r.s = e->var == em->uvar[0] ? em->uval[0][em->copy % em->nu[0]]
		      : e->var == em->uvar[1] ? em->uval[1][em->copy / em->nu[0]] : em->var[e->var];
		if (e->var == em->vvar)
			r.aff = 1, r.stride = 1;
		else
			r.uni = 1;
		return r;
	case KX_ACC:
		if (em->W == 1)         /* scalar accumulators (sum_step) */
			r.uni = 1, r.s = convert(em, em->acc[e->acc][em->copy], KT_F32, e->type);
		else
			r.v = convert(em, em->acc[e->acc][em->copy], KT_F32, e->type);
		return r;
	case KX_LOAD:
		return emit_load(em, e);
	case KX_MOD: {
		lval *a = emit(em, e->a), *b = emit(em, e->b);
		r.uni = a->uni && b->uni;
		LLVMValueRef x = r.uni ? a->s : as_vec(em, a), y = r.uni ? b->s : as_vec(em, b);
		LLVMValueRef v = LLVMBuildSRem(em->B, x, safe_divisor(em, y), "");
		*(r.uni ? &r.s : &r.v) = v;
		return r;
	}
	case KX_RANDOM:
		return emit_random(em, e);
	case KX_OP:
		return emit_op(em, e);
	}
	abort();
}

/* The copy whose value of expression i the current copy shares: the one
 * that agrees with it on the tiled vars i depends on, 0 on the others. */
static int sharing_copy(const emitter *em, int i)
{
	int c1 = em->copy % em->nu[0], c2 = em->copy / em->nu[0];
	if (em->uvar[0] < 0 || !(em->dep[i] >> em->uvar[0] & 1))
		c1 = 0;
	if (em->uvar[1] < 0 || !(em->dep[i] >> em->uvar[1] & 1))
		c2 = 0;
	return c1 + c2 * em->nu[0];
}

/* The cache entry of expression i for the current copy. An operand's
 * entry is the same from its user's sharing copy as from the current one
 * (it depends on no tiled var its user does not). */
static lval *cached(emitter *em, int i)
{
	return &em->cache[sharing_copy(em, i)][i];
}

static int is_emitted(void *ctx, int i)
{
	return cached(ctx, i)->set;
}

/* Emits expression i, whose operands are emitted, for its sharing copy. */
static void emit_one(void *ctx, int i)
{
	emitter *em = ctx;
	lval *r = cached(em, i);
	int saved = em->copy;
	em->copy = sharing_copy(em, i);
	lval v = emit_expr(em, i);
	em->copy = saved;
	*r = v;
	r->set = 1;
}

static lval *emit(emitter *em, int i)
{
	kir_walk(em->k, i, is_emitted, emit_one, em);
	return cached(em, i);
}

static void forget(emitter *em, unsigned depmask)
{
	for (int c = 0; c < em->ncache; c++)
		for (int i = 0; i < em->k->nx; i++)
			if (!depmask || (em->dep[i] & depmask))
				em->cache[c][i].set = 0;
}

/* --- loops ------------------------------------------------------------------------------ */

/* A sum's step. With one lane (a domain of one point per row: GroupNorm
 * statistics, bias gradients) accumulators are scalars and sums may be
 * reassociated, so that LLVM vectorizes the innermost reduction loop
 * instead of running one long chain of dependent adds; with lanes, each
 * lane sums in order. */
static LLVMValueRef sum_step(emitter *em, LLVMValueRef add)
{
	contract(add);
	if (em->W == 1 && LLVMIsAInstruction(add) && LLVMCanValueUseFastMathFlags(add))
		LLVMSetFastMathFlags(add, LLVMFastMathAllowContract | LLVMFastMathAllowReassoc);
	return add;
}

/* Lane 0 of a value, as a scalar. */
static LLVMValueRef lane0(emitter *em, lval *x)
{
	return x->uni ? x->s : LLVMBuildExtractElement(em->B, as_vec(em, x), LLVMConstInt(em->i32, 0, 0), "");
}

/* One point R of accumulator j's loop: the update, then its inner stores. */
static void red_body(emitter *em, int j)
{
	const kir_kernel *k = em->k;
	for (int c = 0; c < em->ncopy; c++) {
		em->copy = c;
		lval *x = emit(em, k->red_value[j]);
		LLVMValueRef v = em->W == 1 ? lane0(em, x) : as_vec(em, x);
		v = convert(em, v, k->x[k->red_value[j]].type, KT_F32);
		em->acc[j][c] = k->red_op[j] == OP_max ? fminmax(em, OP_max, em->acc[j][c], v)
		                : sum_step(em, LLVMBuildFAdd(em->B, em->acc[j][c], v, ""));
		for (int s = 0; s < k->nst; s++)
			if (k->st[s].inner == j + 1)
				emit_store(em, &k->st[s]);
	}
}

/* Accumulator j's reduction loops level .. nred-1, do-while (every extent >= 1). */
static void red_loop(emitter *em, int j, int level)
{
	const kir_kernel *k = em->k;
	if (level == k->nred) {
		red_body(em, j);
		return;
	}
	LLVMBuilderRef B = em->B;
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(em->C, em->fn, "red");
	LLVMBuildBr(B, head);
	LLVMPositionBuilderAtEnd(B, head);
	LLVMValueRef iv = LLVMBuildPhi(B, em->i64, "r"), phis[MAXCOPY];
	LLVMValueRef zero = LLVMConstInt(em->i64, 0, 0);
	LLVMAddIncoming(iv, &zero, &pre, 1);
	for (int c = 0; c < em->ncopy; c++) {
		phis[c] = LLVMBuildPhi(B, LLVMTypeOf(em->acc[j][c]), "acc");
		LLVMAddIncoming(phis[c], &em->acc[j][c], &pre, 1);
		em->acc[j][c] = phis[c];
	}
	em->var[k->rank + level] = iv;
	red_loop(em, j, level + 1);
	LLVMValueRef next = LLVMBuildAdd(B, iv, LLVMConstInt(em->i64, 1, 0), "");
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(em->C, em->fn, "red.done");
	LLVMValueRef more = LLVMBuildICmp(B, LLVMIntSLT, next, LLVMConstInt(em->i64, (unsigned long long)k->ext[k->rank + level], 0), "");
	LLVMBuildCondBr(B, more, head, done);
	LLVMAddIncoming(iv, &next, &latch, 1);
	for (int c = 0; c < em->ncopy; c++)
		LLVMAddIncoming(phis[c], &em->acc[j][c], &latch, 1);
	LLVMPositionBuilderAtEnd(B, done);
}

/* Accumulator j: the values its loop uses that do not change inside it
 * (earlier accumulators are final by now) once per chunk, then the loop. */
static void reduce(emitter *em, int j)
{
	const kir_kernel *k = em->k;
	for (int c = 0; c < em->ncopy; c++) {
		em->copy = c;
		for (int i = 0; i < k->nx; i++)
			if ((em->inred[i] >> j & 1) && !(em->dep[i] & em->redmask))
				emit(em, i);
	}
	for (int c = 0; c < em->ncopy; c++)
		em->acc[j][c] = kreal(em, em->f32, k->red_op[j] == OP_max ? -INFINITY : 0, em->W > 1);
	if (!k->nseg)
		red_loop(em, j, 0);
	for (int s = 0; s < k->nseg; s++) {     /* a joint reduction: each segment's loop in turn */
		kir_kernel v = kir_segment_view(k, s);
		em->k = &v;
		red_loop(em, j, 0);
		forget(em, em->redmask);
		em->k = k;
	}
	forget(em, em->redmask);
}

/* One chunk of lanes (vector var's lane 0 in em->var[vvar]): reduce, store. */
static void emit_chunk(emitter *em, LLVMValueRef mask, int nact)
{
	const kir_kernel *k = em->k;
	forget(em, 0);
	em->mask = mask;
	em->nact = nact;
	for (int j = 0; j < k->nacc; j++)
		reduce(em, j);
	for (int c = 0; c < em->ncopy; c++) {
		em->copy = c;
		for (int s = 0; s < k->nst; s++)
			if (!k->st[s].inner) {
				emit(em, k->st[s].index);
				emit(em, k->st[s].value);
			}
	}
	for (int c = 0; c < em->ncopy; c++) {
		em->copy = c;
		for (int s = 0; s < k->nst; s++)
			if (!k->st[s].inner)
				emit_store(em, &k->st[s]);
	}
}

/* The tile dim that is the vector var (groups of full vectors), or -1. */
static int vector_tile(const emitter *em)
{
	for (int d = 0; d < 2; d++)
		if (em->uvar[d] >= 0 && em->uvar[d] == em->vvar)
			return d;
	return -1;
}

static void set_copies(emitter *em, int nu0, int nu1)
{
	em->nu[0] = nu0, em->nu[1] = nu1, em->ncopy = nu0 * nu1;
}

/* Chunks x0 = 0, step, 2 step, ... < end: full vectors, in groups of
 * nu[d] (copies: x0 + c W) when the vector var is tile dim d. */
static void chunk_loop(emitter *em, int d, int64_t step, int64_t end)
{
	LLVMBuilderRef B = em->B;
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(em->C, em->fn, "chunk");
	LLVMBuildBr(B, head);
	LLVMPositionBuilderAtEnd(B, head);
	LLVMValueRef x0 = LLVMBuildPhi(B, em->i64, "x0"), zero = LLVMConstInt(em->i64, 0, 0);
	LLVMAddIncoming(x0, &zero, &pre, 1);
	em->var[em->vvar] = x0;
	for (int c = 0; d >= 0 && c < em->nu[d]; c++)
		em->uval[d][c] = LLVMBuildAdd(B, x0, LLVMConstInt(em->i64, (unsigned long long)(c * em->W), 0), "");
	emit_chunk(em, NULL, em->W);
	LLVMValueRef next = LLVMBuildAdd(B, x0, LLVMConstInt(em->i64, (unsigned long long)step, 0), "");
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(em->C, em->fn, "chunk.done");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, next, LLVMConstInt(em->i64, (unsigned long long)end, 0), ""),
	                head, done);
	LLVMAddIncoming(x0, &next, &latch, 1);
	LLVMPositionBuilderAtEnd(B, done);
}

/* The chunks of one row (or one tile of rows): full vectors (in groups
 * when the vector var is tiled: pick_tile makes the group divide them),
 * then a tail, which runs without the vector var's copies. */
static void emit_row(emitter *em)
{
	const kir_kernel *k = em->k;
	int64_t E = em->vvar >= 0 ? k->ext[em->vvar] : 1, W = em->W;
	int64_t nfull = E / W, rem = E % W;
	int d = vector_tile(em), nu[2] = { em->nu[0], em->nu[1] };
	if (nfull == 1) {
		if (em->vvar >= 0)
			em->var[em->vvar] = LLVMConstInt(em->i64, 0, 0);
		emit_chunk(em, NULL, em->W);
	} else if (nfull > 1)
		chunk_loop(em, d, d >= 0 ? em->nu[d] * W : W, nfull * W);
	if (rem) {
		LLVMValueRef m[64];
		for (int l = 0; l < em->W; l++)
			m[l] = LLVMConstInt(em->i1, l < rem, 0);
		em->var[em->vvar] = LLVMConstInt(em->i64, (unsigned long long)(nfull * W), 0);
		if (d >= 0) {
			set_copies(em, d == 0 ? 1 : nu[0], d == 1 ? 1 : nu[1]);
			em->uval[d][0] = em->var[em->vvar];
		}
		emit_chunk(em, LLVMConstVector(m, (unsigned)em->W), (int)rem);
		set_copies(em, nu[0], nu[1]);
	}
}

/* --- analysis ---------------------------------------------------------------------------- */

static void analyse(emitter *em)
{
	const kir_kernel *k = em->k;
	for (int i = 0; i < k->nx; i++) {
		const kir_expr *e = &k->x[i];
		/* the accumulator depends on the whole domain point (each copy has its own) */
		unsigned d = e->kind == KX_VAR ? 1u << e->var
		             : e->kind == KX_ACC ? DEP_ACC | ((1u << k->rank) - 1) : 0;
		int ops[3] = { e->a, e->b, e->c };
		for (int j = 0; j < 3; j++)
			if (ops[j] >= 0 && e->kind != KX_VAR && e->kind != KX_CONST && e->kind != KX_ACC)
				d |= em->dep[ops[j]];
		em->dep[i] = d;
	}
	for (int j = 0; j < k->nacc; j++)
		em->inred[k->red_value[j]] |= 1u << j;
	for (int s = 0; s < k->nseg; s++)
		for (int j = 0; j < k->nacc; j++) {
			em->inred[k->seg[s].red_value[j]] |= 1u << j;
			for (int v = 0; v < k->seg[s].nred; v++)
				em->redmask |= 1u << (k->rank + v);
		}
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].inner) {
			em->inred[k->st[s].index] |= 1u << (k->st[s].inner - 1);
			em->inred[k->st[s].value] |= 1u << (k->st[s].inner - 1);
		}
	for (int i = k->nx - 1; i >= 0; i--) {
		const kir_expr *e = &k->x[i];
		int ops[3] = { e->a, e->b, e->c };
		if (e->kind != KX_VAR && e->kind != KX_CONST && e->kind != KX_ACC)
			for (int j = 0; j < 3; j++)
				if (ops[j] >= 0)
					em->inred[ops[j]] |= em->inred[i];
	}
	for (int v = k->rank; v < k->rank + k->nred; v++)
		em->redmask |= 1u << v;
}

enum { NEAR_ELEMENTS = 16 };   /* at most a cache line apart */

/* em->near: the loads whose neighbouring points along the last row var
 * (the one before the vector var: the pixels of an image row) read
 * elements at most NEAR_ELEMENTS apart, every var mid-range where clamps
 * do not bind. (Measured: copies along an earlier var, even a near one
 * such as a weight gradient's filter column, are not cheaper.) */
static void find_near(emitter *em)
{
	const kir_kernel *k = em->k;
	int v = k->rank - 2;
	if (v < 0 || k->ext[v] < 2)
		return;
	int64_t at[KIR_MAXVAR] = { 0 }, *base = malloc(((size_t)k->nx + 1) * sizeof *base);
	int64_t *next = malloc(((size_t)k->nx + 1) * sizeof *next);
	for (int w = 0; w < k->rank + k->nred; w++)
		at[w] = k->ext[w] / 2;
	kir_index_values(k, at, base);
	at[v]++;
	kir_index_values(k, at, next);
	for (int i = 0; i < k->nx; i++) {
		if (k->x[i].kind != KX_LOAD)
			continue;
		int64_t x = base[k->x[i].a], y = next[k->x[i].a];
		if (x != KIR_UNKNOWN && y != KIR_UNKNOWN && llabs(y - x) <= NEAR_ELEMENTS)
			em->near[i] |= 1u << v;
	}
	free(base);
	free(next);
}

/* Whether index expression i is affine in var v with a constant
 * coefficient *coef: v, constants, sums and differences, products by a
 * constant; what does not use v may be anything. */
static int linear_in(const emitter *em, int i, int v, int64_t *coef)
{
	const kir_expr *e = &em->k->x[i];
	int64_t a, b;
	*coef = 0;
	if (!(em->dep[i] >> v & 1))
		return 1;
	if (e->kind == KX_VAR) {
		*coef = 1;
		return 1;
	}
	if (e->kind != KX_OP || e->type != KT_IDX)
		return 0;
	if (e->op == OP_add || e->op == OP_sub) {
		if (!linear_in(em, e->a, v, &a) || !linear_in(em, e->b, v, &b))
			return 0;
		*coef = e->op == OP_add ? a + b : a - b;
		return 1;
	}
	int scale = em->dep[e->a] >> v & 1 ? e->b : e->a, lin = scale == e->b ? e->a : e->b;
	if (e->op != OP_mul || em->k->x[scale].kind != KX_CONST || !linear_in(em, lin, v, &a))
		return 0;
	*coef = a * (int64_t)em->k->x[scale].value;
	return 1;
}

/* Whether load i reads across the vector var with a stride of a vector or
 * more and along row var v with stride 1: the gathers of W copies of v
 * are then W rows of W contiguous elements. */
static int transposable(const emitter *em, int i, int v)
{
	int64_t along, across;
	return em->k->x[i].kind == KX_LOAD && linear_in(em, em->k->x[i].a, v, &along) && along == 1 &&
	       linear_in(em, em->k->x[i].a, em->vvar, &across) && llabs(across) >= em->W;
}

/* An elementwise kernel that reads a buffer across the vector var, as an
 * epilogue reads a channels-last result in the order of its NCHW output,
 * would gather every vector, element by element on AVX2 (scattered cache
 * lines, measured at 3-5 GB/s). When such a load runs along a row var v
 * whose extent W divides, em->transposed marks the loads and v gets W
 * copies (a register tile, pick_tile's machinery): the copies' vectors
 * are then one W x W tile, read as W vector loads and transposed in
 * registers (transposed_load). Of several such vars, the one with the
 * most such loads among those the stores read. Only for targets of up
 * to TRANSPOSE_LANES: AVX-512's gathers cost less, and its 16 lanes take
 * four rounds of two-vector permutes per vector and 16 copies of the body
 * (models/unet.lua, batch 64, on a Xeon: an epilogue at 6.4 ms gathering,
 * 11.9 transposed; the train step's `add` kernels 160 against 183 ms;
 * AVX2 code there: 208 against 177). */
enum { TRANSPOSE_LANES = 8 };

static void find_transposed(emitter *em)
{
	const kir_kernel *k = em->k;
	if (k->nred || k->nseg || k->rank < 2 || em->W < 2 || em->tgt->lanes > TRANSPOSE_LANES || em->W > MAXCOPY ||
	    em->uvar[0] >= 0)
		return;
	char *used = calloc((size_t)k->nx + 1, 1);
	kir_mark_used(k, used);
	int best = -1, most = 0;
	for (int v = 0; v < em->vvar; v++) {
		int n = 0;
		for (int i = 0; i < k->nx && k->ext[v] % em->W == 0; i++)
			n += used[i] && transposable(em, i, v);
		if (n > most)
			best = v, most = n;
	}
	for (int i = 0; i < k->nx && best >= 0; i++)
		em->transposed[i] = (unsigned char)(used[i] && transposable(em, i, best));
	free(used);
	if (best < 0)
		return;
	em->uvar[0] = best;
	set_copies(em, em->W, 1);
}

/* The register tile of a contraction: copies n1 x n2 of row vars v1, v2
 * (n2 = 1: one var), each a divisor of its var's extent (so every tile is
 * whole), within the target's vector registers (tile_registers), with the
 * least load cost per multiply-add. A load is made once per copy
 * coordinate of the tiled vars it depends on; measured on AVX-512
 * (bench/conv_bench), a vector load costs VECTOR_LOAD per copy, a scalar
 * one (a broadcast, folded into its multiply-add) 1 for its first copy and
 * then NEAR_COPY per copy along the last row var when it reads neighbours
 * there a few elements apart (the pixels of an image row: one cache line,
 * in L1; find_near), 1 along any other (another image or channel plane: a
 * stream of its own). Among equals the larger tile, then the later var. */
static const double VECTOR_LOAD = 3, NEAR_COPY = 0.25;

typedef struct {
	int v[2], n[2];
	double cost;
} tile;

static double tile_cost(const emitter *em, const tile *t)
{
	const kir_kernel *k = em->k;
	double loads = 0;
	for (int i = 0; i < k->nx; i++) {
		if (!em->inred[i] || k->x[i].kind != KX_LOAD)
			continue;
		int vec = em->dep[i] >> em->vvar & 1;
		double near = 1, far = 1;
		for (int d = 0; d < 2; d++)
			if (t->v[d] >= 0 && (em->dep[i] >> t->v[d] & 1))
				*(!vec && (em->near[i] >> t->v[d] & 1) ? &near : &far) *= t->n[d];
		loads += vec ? VECTOR_LOAD * far : far * (1 + NEAR_COPY * (near - 1));
	}
	return loads / (t->n[0] * t->n[1]);
}

/* The vector registers a tile holds live in the innermost reduction loop:
 * every accumulator's copies (accumulators run one after another, but a
 * finished one's copies wait for the stores); each vector operand that
 * several copies share, once per distinct value; every broadcast scalar,
 * once per distinct value (LLVM keeps the broadcasts of neighbouring
 * pixels in registers for the next filter taps, which read them again,
 * even where AVX-512 could read one from memory into its multiply-add,
 * and on AVX-512 keeps a broadcast that several copies share in a
 * register too: counting only the broadcasts of neighbours, a 12 x 2
 * input gradient tile and a 2 x 14 matmul tile spilled); and one for the
 * operand in flight (a vector that one copy reads, the product before a
 * select). A tile that needs more than the target has spills in that loop
 * (test_llvm, register_tiles_fit_the_vector_registers, reads the
 * assembly). The count errs high: a 4 x 6 1x1 weight gradient tile (35
 * by this count) did not spill on AVX-512. */
static int tile_registers(const emitter *em, const tile *t)
{
	const kir_kernel *k = em->k;
	int ncopy = t->n[0] * t->n[1], regs = k->nacc * ncopy + 1;
	for (int i = 0; i < k->nx; i++) {
		if (!em->inred[i] || k->x[i].kind != KX_LOAD)
			continue;
		int distinct = 1, broadcast = !(em->dep[i] >> em->vvar & 1);
		for (int d = 0; d < 2; d++)
			if (t->v[d] >= 0 && (em->dep[i] >> t->v[d] & 1))
				distinct *= t->n[d];
		if (broadcast || distinct < ncopy)
			regs += distinct;
	}
	return regs;
}

/* How many copies var v can have: a row var's extent; the vector var's
 * full vectors (the tail runs without copies). */
static int64_t tile_extent(const emitter *em, int v)
{
	return v == em->vvar ? em->k->ext[v] / em->W : em->k->ext[v];
}

/* The cost model's order, best first: less cost; among equal costs a
 * tile before no tile, the larger tile first, and the one tried later
 * (the later var) first. */
static int tile_before(const tile *a, const tile *b)
{
	return a->cost < b->cost - 1e-9 ||
	       (b->v[0] >= 0 && a->cost < b->cost + 1e-9 && a->n[0] * a->n[1] >= b->n[0] * b->n[1]);
}

/* The best tiles so far, in the cost model's order (at most LLVM_TILE_CANDIDATES). */
typedef struct {
	tile t[LLVM_TILE_CANDIDATES];
	int n;
} tile_list;

static void tile_list_add(tile_list *l, const tile *t)
{
	int at = 0;
	while (at < l->n && !tile_before(t, &l->t[at]))
		at++;
	if (at == LLVM_TILE_CANDIDATES)
		return;
	int n = l->n < LLVM_TILE_CANDIDATES ? l->n : LLVM_TILE_CANDIDATES - 1;
	memmove(&l->t[at + 1], &l->t[at], (size_t)(n - at) * sizeof *l->t);
	l->t[at] = *t;
	l->n = n + 1;
}

/* Whether tile t is one this kernel can run: hinted vars, copies that
 * divide their extents (whole tiles), within the vector registers. */
static int tile_fits(const emitter *em, const tile *t)
{
	const kir_kernel *k = em->k;
	for (int d = 0; d < 2; d++) {
		if (t->v[d] < 0) {
			if (t->n[d] != 1 || (d == 0 && t->v[1] >= 0))
				return 0;
			continue;
		}
		if (t->v[d] >= k->rank || !k->tile_hint[t->v[d]] || t->n[d] < 2 ||
		    t->n[d] > tile_extent(em, t->v[d]) || tile_extent(em, t->v[d]) % t->n[d])
			return 0;
	}
	return (t->v[0] < 0 || t->v[0] != t->v[1]) && t->n[0] * t->n[1] <= MAXCOPY &&
	       tile_registers(em, t) <= em->tgt->vector_registers;
}

static void try_tile(const emitter *em, tile_list *l, int v1, int v2)
{
	int64_t e1 = tile_extent(em, v1);
	for (int n1 = 2; n1 <= 16 && n1 <= e1; n1++)
		for (int n2 = 1; n1 * n2 <= MAXCOPY; n2++) {
			tile t = { { v1, v2 }, { n1, n2 }, 0 };
			if ((v2 < 0) != (n2 == 1) || !tile_fits(em, &t))
				continue;
			t.cost = tile_cost(em, &t);
			tile_list_add(l, &t);
		}
}

/* Every tile the cost model weighs for em's kernel, best first (none
 * when the kernel has no reduction to tile). */
static tile_list tile_candidates(const emitter *em)
{
	const kir_kernel *k = em->k;
	tile_list l = { .n = 0 };
	if (!k->nred || k->rank < 2)
		return l;
	tile none = { { -1, -1 }, { 1, 1 }, 0 };
	none.cost = tile_cost(em, &none);
	tile_list_add(&l, &none);
	for (int v1 = 0; v1 < k->rank; v1++) {
		if (!k->tile_hint[v1] || tile_extent(em, v1) < 2)
			continue;
		try_tile(em, &l, v1, -1);
		for (int v2 = 0; v2 < k->rank; v2++)
			if (v2 != v1 && k->tile_hint[v2] && tile_extent(em, v2) >= 2)
				try_tile(em, &l, v1, v2);
	}
	return l;
}

/* The kernel's tile as the schedule fixed it (k->tile) when it fits,
 * else the cost model's pick. */
static void pick_tile(emitter *em)
{
	const kir_kernel *k = em->k;
	tile best = { { -1, -1 }, { 1, 1 }, 0 };
	tile fixed = { { k->tile.var[0], k->tile.var[1] }, { k->tile.copies[0], k->tile.copies[1] }, 0 };
	if (k->tile.source != KIR_TILE_OPEN && k->nred && k->rank >= 2 && tile_fits(em, &fixed)) {
		best = fixed;
	} else {
		tile_list l = tile_candidates(em);
		if (l.n)
			best = l.t[0];
	}
	for (int d = 0; d < 2; d++)
		em->uvar[d] = best.v[d], em->nu[d] = best.n[d];
	em->ncopy = best.n[0] * best.n[1];
}

/* --- the function ---------------------------------------------------------------------------- */

static void setup_types(emitter *em)
{
	LLVMContextRef C = em->C;
	em->i1 = LLVMInt1TypeInContext(C);
	em->i16 = LLVMInt16TypeInContext(C);
	em->i32 = LLVMInt32TypeInContext(C);
	em->i64 = LLVMInt64TypeInContext(C);
	em->f16 = LLVMHalfTypeInContext(C);
	em->f32 = LLVMFloatTypeInContext(C);
	em->f64 = LLVMDoubleTypeInContext(C);
	em->ptr = LLVMPointerTypeInContext(C, 0);
}

/* Buffer base pointers, loaded once from the arguments (kir_share). */
static void load_bases(emitter *em, LLVMValueRef args)
{
	const kir_kernel *k = em->k;
	for (int j = 0; j < k->narg; j++) {
		LLVMValueRef i = LLVMConstInt(em->i64, (unsigned long long)j, 0);
		em->base[k->arg[j]] = LLVMBuildLoad2(em->B, em->ptr, LLVMBuildGEP2(em->B, em->ptr, args, &i, 1, ""), "buf");
	}
}

/* Coordinates of the row vars from row r (row-major over vars 0..rank-2). */
static void decode_row(emitter *em, LLVMValueRef r)
{
	const kir_kernel *k = em->k;
	for (int v = k->rank - 2; v >= 0; v--) {
		LLVMValueRef e = LLVMConstInt(em->i64, (unsigned long long)k->ext[v], 0);
		em->var[v] = v ? LLVMBuildURem(em->B, r, e, "") : r;
		r = LLVMBuildUDiv(em->B, r, e, "");
	}
}

static int tiles_rows(const emitter *em)
{
	return (em->uvar[0] >= 0 && em->uvar[0] != em->vvar) || (em->uvar[1] >= 0 && em->uvar[1] != em->vvar);
}

/* The distance in rows between neighbours in var v. */
static int64_t row_stride(const kir_kernel *k, int v)
{
	int64_t stride = 1;
	for (int w = v + 1; w < k->rank - 1; w++)
		stride *= k->ext[w];
	return stride;
}

/* Row r runs alone, or as copy 0 of a tile of rows (its tiled coordinates
 * u0 + c, as pick_tile's copies); the others of a whole tile in [rb, re)
 * skip, as copy 0 ran them. */
static void emit_tiled_row(emitter *em, LLVMValueRef r, LLVMValueRef rb, LLVMValueRef re, LLVMBasicBlockRef latch)
{
	const kir_kernel *k = em->k;
	LLVMBuilderRef B = em->B;
	LLVMValueRef lead = r, last = r, first = LLVMConstInt(em->i1, 1, 0), t[2];
	for (int d = 0; d < 2 && em->uvar[d] >= 0; d++) {
		if (em->uvar[d] == em->vvar)
			continue;
		int64_t stride = row_stride(k, em->uvar[d]);
		t[d] = LLVMBuildURem(B, em->var[em->uvar[d]], LLVMConstInt(em->i64, (unsigned long long)em->nu[d], 0), "");
		lead = LLVMBuildSub(B, lead, LLVMBuildMul(B, t[d], LLVMConstInt(em->i64, (unsigned long long)stride, 0), ""), "");
		first = LLVMBuildAnd(B, first, LLVMBuildICmp(B, LLVMIntEQ, t[d], LLVMConstInt(em->i64, 0, 0), ""), "");
		last = LLVMBuildAdd(B, last, LLVMConstInt(em->i64, (unsigned long long)((em->nu[d] - 1) * stride), 0), "");
		last = LLVMBuildSub(B, last, LLVMBuildMul(B, t[d], LLVMConstInt(em->i64, (unsigned long long)stride, 0), ""), "");
	}
	LLVMValueRef whole = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, lead, rb, ""), LLVMBuildICmp(B, LLVMIntSLT, last, re, ""), "");
	LLVMBasicBlockRef tile_bb = LLVMAppendBasicBlockInContext(em->C, em->fn, "tile");
	LLVMBasicBlockRef lead_bb = LLVMAppendBasicBlockInContext(em->C, em->fn, "tile.lead");
	LLVMBasicBlockRef single = LLVMAppendBasicBlockInContext(em->C, em->fn, "single");
	LLVMBuildCondBr(B, whole, tile_bb, single);
	LLVMPositionBuilderAtEnd(B, tile_bb);
	LLVMBuildCondBr(B, first, lead_bb, latch);
	LLVMPositionBuilderAtEnd(B, lead_bb);
	for (int d = 0; d < 2 && em->uvar[d] >= 0; d++)
		for (int c = 0; c < em->nu[d] && em->uvar[d] != em->vvar; c++)
			em->uval[d][c] = LLVMBuildAdd(B, em->var[em->uvar[d]], LLVMConstInt(em->i64, (unsigned long long)c, 0), "");
	emit_row(em);
	LLVMBuildBr(B, latch);
	LLVMPositionBuilderAtEnd(B, single);
	int nu[2] = { em->nu[0], em->nu[1] }, uvar[2] = { em->uvar[0], em->uvar[1] };
	set_copies(em, 1, 1);
	em->uvar[0] = em->uvar[1] = -1;
	emit_row(em);
	set_copies(em, nu[0], nu[1]);
	em->uvar[0] = uvar[0], em->uvar[1] = uvar[1];
}

/* The lanes of a kernel's vectors: of a batch, its widest segment's. */
static int kernel_lanes(const kir_kernel *k, int lanes)
{
	int W = 1;
	for (int s = 0; s < k->nseg && kir_is_batch(k); s++) {
		kir_kernel v = kir_segment_view(k, s);
		int w = kernel_lanes(&v, lanes);
		W = w > W ? w : W;
	}
	return kir_is_batch(k) ? W : lanes_for(k->rank ? k->ext[k->rank - 1] : 1, lanes > 64 ? 64 : lanes);
}

/* Rows [rb, re) at the builder's position (the bases loaded); ends at the
 * block after them. */
static void emit_rows(emitter *em, LLVMValueRef rb, LLVMValueRef re)
{
	LLVMBuilderRef B = em->B;
	LLVMBasicBlockRef entry = LLVMGetInsertBlock(B);
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(em->C, em->fn, "row");
	LLVMBasicBlockRef latch = LLVMAppendBasicBlockInContext(em->C, em->fn, "row.next");
	LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(em->C, em->fn, "rows.done");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, rb, re, ""), head, exit);
	LLVMPositionBuilderAtEnd(B, head);
	LLVMValueRef r = LLVMBuildPhi(B, em->i64, "r");
	LLVMAddIncoming(r, &rb, &entry, 1);
	decode_row(em, r);
	if (tiles_rows(em))
		emit_tiled_row(em, r, rb, re, latch);
	else
		emit_row(em);
	LLVMBuildBr(B, latch);
	LLVMPositionBuilderAtEnd(B, latch);
	LLVMValueRef next = LLVMBuildAdd(B, r, LLVMConstInt(em->i64, 1, 0), "");
	LLVMAddIncoming(r, &next, &latch, 1);
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, next, re, ""), head, exit);
	LLVMPositionBuilderAtEnd(B, exit);
}

/* The emitter of kernel k (a plain kernel or a segment's view): its lanes,
 * analysis and tile. `base` is shared with the batch it is part of. */
static void emitter_init(emitter *em, const emitter *from, const kir_kernel *k)
{
	*em = (emitter){ .C = from->C, .M = from->M, .B = from->B, .p = from->p, .k = k, .tgt = from->tgt,
	                 .fn = from->fn, .base = from->base, .uvar = { -1, -1 }, .nu = { 1, 1 }, .ncopy = 1 };
	setup_types(em);
	em->vvar = k->rank - 1;
	em->W = kernel_lanes(k, em->tgt->lanes);
	em->dep = calloc((size_t)k->nx + 1, sizeof *em->dep);
	em->inred = calloc((size_t)k->nx + 1, 1);
	em->near = calloc((size_t)k->nx + 1, sizeof *em->near);
	em->transposed = calloc((size_t)k->nx + 1, 1);
	analyse(em);
	find_near(em);
	pick_tile(em);
	find_transposed(em);
	em->ncache = em->ncopy;         /* the most copies emission will use */
	for (int c = 0; c < em->ncache; c++)
		em->cache[c] = calloc((size_t)k->nx + 1, sizeof(lval));
}

static void emitter_free(emitter *em)
{
	for (int c = 0; c < em->ncache; c++)
		free(em->cache[c]);
	free(em->inred);
	free(em->near);
	free(em->transposed);
	free(em->dep);
}

/* A batch's rows: segment s has rows [start, start + n) of the kernel and
 * runs its part of [rb, re) as its own rows from 0. */
static void emit_batch(emitter *em, LLVMValueRef rb, LLVMValueRef re)
{
	const kir_kernel *k = em->k;
	LLVMBuilderRef B = em->B;
	int64_t start = 0;
	for (int s = 0; s < k->nseg; s++) {
		kir_kernel v = kir_segment_view(k, s);
		int64_t n = kir_rows(&v);
		if (!kir_is_empty(&v)) {
			LLVMValueRef first = LLVMConstInt(em->i64, (unsigned long long)start, 0);
			LLVMValueRef lo = LLVMBuildSub(B, rb, first, ""), hi = LLVMBuildSub(B, re, first, "");
			LLVMValueRef zero = LLVMConstInt(em->i64, 0, 0), rows = LLVMConstInt(em->i64, (unsigned long long)n, 0);
			lo = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, lo, zero, ""), zero, lo, "");
			hi = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, hi, rows, ""), rows, hi, "");
			emitter seg;
			emitter_init(&seg, em, &v);
			emit_rows(&seg, lo, hi);
			emitter_free(&seg);
		}
		start += n;
	}
}

static LLVMValueRef build_function(emitter *em, const char *name)
{
	const kir_kernel *k = em->k;
	LLVMBuilderRef B = em->B;
	LLVMTypeRef params[3] = { em->ptr, em->i64, em->i64 };
	LLVMValueRef fn = LLVMAddFunction(em->M, name, LLVMFunctionType(LLVMVoidTypeInContext(em->C), params, 3, 0));
	em->fn = fn;
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
	                        LLVMCreateEnumAttribute(em->C, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
	if (kernel_lanes(k, em->tgt->lanes) >= 16) {     /* keep 512-bit vectors on CPUs that would rather split them */
		LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", "512");
		LLVMAddTargetDependentFunctionAttr(fn, "prefer-vector-width", "512");
	}
	LLVMValueRef args = LLVMGetParam(fn, 0), rb = LLVMGetParam(fn, 1), re = LLVMGetParam(fn, 2);
	LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(em->C, fn, "entry"));
	if (!kir_is_empty(k)) {   /* kir_eval does nothing at all else */
		load_bases(em, args);
		if (kir_is_batch(k))
			emit_batch(em, rb, re);
		else {
			emitter plain;
			emitter_init(&plain, em, k);
			emit_rows(&plain, rb, re);
			emitter_free(&plain);
		}
	}
	LLVMBuildRetVoid(B);
	return fn;
}

LLVMValueRef llvm_emit_kernel(LLVMModuleRef M, const kir_program *p, const kir_kernel *k,
                              const char *name, const llvm_target *t)
{
	emitter em = { .C = LLVMGetModuleContext(M), .M = M, .p = p, .k = k, .tgt = t };
	setup_types(&em);
	em.B = LLVMCreateBuilderInContext(em.C);
	em.base = calloc((size_t)p->nbuf + 1, sizeof *em.base);
	LLVMValueRef fn = build_function(&em, name);
	free(em.base);
	LLVMDisposeBuilder(em.B);
	return fn;
}

/* The emitter's tile as llvm_tile reports it. */
static llvm_tile report_tile(const emitter *em, const tile *t)
{
	return (llvm_tile){ { t->v[0], t->v[1] }, { t->n[0], t->n[1] }, tile_registers(em, t) };
}

llvm_tile llvm_kernel_tile(const kir_program *p, const kir_kernel *k, const llvm_target *t)
{
	llvm_tile r = { { -1, -1 }, { 1, 1 }, 0 };
	emitter base = { .C = LLVMContextCreate(), .p = p, .tgt = t };
	for (int s = 0; s < (kir_is_batch(k) ? k->nseg : 1) && r.var[0] < 0; s++) {
		kir_kernel v = kir_is_batch(k) ? kir_segment_view(k, s) : *k;
		emitter em;
		emitter_init(&em, &base, &v);
		tile tl = { { em.uvar[0], em.uvar[1] }, { em.nu[0], em.nu[1] }, 0 };
		r = report_tile(&em, &tl);
		emitter_free(&em);
	}
	LLVMContextDispose(base.C);
	return r;
}

int llvm_tile_candidates(const kir_program *p, const kir_kernel *k, const llvm_target *t,
                         llvm_tile *out)
{
	if (k->nseg)
		return 0;
	emitter base = { .C = LLVMContextCreate(), .p = p, .tgt = t }, em;
	emitter_init(&em, &base, k);
	tile_list l = tile_candidates(&em);
	for (int i = 0; i < l.n; i++)
		out[i] = report_tile(&em, &l.t[i]);
	emitter_free(&em);
	LLVMContextDispose(base.C);
	return l.n;
}

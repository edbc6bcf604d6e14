/* lower_index: index arithmetic in the kernel being built (lower_impl.h).
 *
 * requires: L->k is the kernel being built; operands are KT_IDX
 *   expressions of it.
 * establishes: the expression of the result, folded when its operands
 *   are constants and simplified by the identities of 0 and 1; linearize
 *   undoes the split of a var that delinearize made, so a load of a
 *   reshaped contiguous run stays affine in the var (a vector load). */
#include "lower_impl.h"

int lower_iop(lower *L, ir_opcode op, int a, int b)
{
	kir_expr *x = L->k->x;
	int ca = x[a].kind == KX_CONST, cb = x[b].kind == KX_CONST;
	if (ca && cb && op != OP_div)           /* fold */
		return I(L, (int64_t)ir_scalar(op, x[a].value, x[b].value, 0));
	if ((op == OP_add || op == OP_sub) && cb && x[b].value == 0)
		return a;
	if (op == OP_add && ca && x[a].value == 0)
		return b;
	if ((op == OP_mul || op == OP_div) && cb && x[b].value == 1)
		return a;
	if (op == OP_mul && ca && x[a].value == 1)
		return b;
	if (op == OP_mul && ((ca && x[a].value == 0) || (cb && x[b].value == 0)))
		return I(L, 0);
	return kir_op(L->k, KT_IDX, op, a, b, -1);
}

int lower_clamp(lower *L, int v, int64_t lo, int64_t hi)
{
	return lower_iop(L, OP_min, lower_iop(L, OP_max, v, I(L, lo)), I(L, hi));
}

/* 1 when lo <= v < hi (as an index value). */
int lower_in_range(lower *L, int v, int64_t lo, int64_t hi)
{
	return lower_iop(L, OP_mul, lower_iop(L, OP_le, I(L, lo), v), lower_iop(L, OP_lt, v, I(L, hi)));
}

/* 1 when expression i is x `op` d for a constant d (x in *x). */
static int is_by(lower *L, int i, int op, int64_t d, int *x)
{
	const kir_expr *e = &L->k->x[i];
	int match = op == KX_MOD ? e->kind == KX_MOD : e->kind == KX_OP && e->op == OP_div;
	if (!match || L->k->x[e->b].kind != KX_CONST || L->k->x[e->b].value != (double)d)
		return 0;
	*x = e->a;
	return 1;
}

/* a * d + b without the split of x that delinearize made: x when a is
 * x / d and b is x % d, u * d + x when a is u + x / d; else -1. */
static int undo_split(lower *L, int a, int b, int64_t d)
{
	const kir_expr *e = &L->k->x[a];
	int x, y;
	if (!is_by(L, b, KX_MOD, d, &x))
		return -1;
	if (is_by(L, a, OP_div, d, &y) && y == x)
		return x;
	if (e->kind == KX_OP && e->op == OP_add && is_by(L, e->b, OP_div, d, &y) && y == x)
		return lower_iop(L, OP_add, lower_iop(L, OP_mul, e->a, I(L, d)), x);
	return -1;
}

int lower_linearize(lower *L, const int *idx, const ir_shape *s)
{
	int lin = I(L, 0);
	for (int r = 0; r < s->rank; r++) {
		int whole = undo_split(L, lin, idx[r], s->d[r]);
		lin = whole >= 0 ? whole : lower_iop(L, OP_add, lower_iop(L, OP_mul, lin, I(L, s->d[r])), idx[r]);
	}
	return lin;
}

void lower_delinearize(lower *L, int lin, const ir_shape *s, int *idx)
{
	for (int r = s->rank - 1; r >= 0; r--) {
		idx[r] = r == 0 ? lin : kir_mod(L->k, lin, I(L, s->d[r]));
		lin = lower_iop(L, OP_div, lin, I(L, s->d[r]));
	}
}

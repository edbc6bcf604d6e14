/* scalar.c: what each elementwise op computes on one element (ir_scalar),
 * and the internal error of a consumer that has no case for an op. */
#include <math.h>
#include <stdlib.h>

#include "ir.h"

void ir_no_case(ir_opcode op, const char *file, int line)
{
	const char *name = (unsigned)op < OP_COUNT ? ir_ops[op].name : "(not an op)";
	fprintf(stderr, "ddpmc: internal error: %s:%d: no case for op %s (%d)\n", file, line, name, (int)op);
	abort();
}

static double nan_max(double a, double b)
{
	return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
}

static double nan_min(double a, double b)
{
	return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
}

double ir_scalar(ir_opcode op, double a, double b, double c)
{
	switch (op) {
	case OP_neg: return -a;
	case OP_exp: return exp(a);
	case OP_log: return log(a);
	case OP_sqrt: return sqrt(a);
	case OP_rsqrt: return 1.0 / sqrt(a);
	case OP_sin: return sin(a);
	case OP_cos: return cos(a);
	case OP_tanh: return tanh(a);
	case OP_sigmoid: return 1.0 / (1.0 + exp(-a));
	case OP_abs: return fabs(a);
	case OP_cast: return a;
	case OP_add: return a + b;
	case OP_sub: return a - b;
	case OP_mul: return a * b;
	case OP_div: return a / b;
	case OP_max: return nan_max(a, b);
	case OP_min: return nan_min(a, b);
	case OP_lt: return a < b;
	case OP_le: return a <= b;
	case OP_eq: return a == b;
	case OP_select: return a != 0 ? b : c;
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(op);
}

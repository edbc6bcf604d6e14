/* ops.h: the op table. Every op of the graph IR is listed here once.
 *
 * Included by X-macro users (ir.h builds the enum and the ir_ops[] info
 * table). The shape rules, the interpreter, autodiff and the code generators
 * switch over the same enum, and no switch over ops has a `default:`: the
 * compiler (-Werror=switch, compiler/CMakeLists.txt) stops at every switch
 * that lacks a new op's case. A consumer that cannot meet an op states it
 * with IR_NO_CASE, an internal error naming the op and the file:line. The
 * scalar meaning of an elementwise op is ir_scalar's (scalar.c), shared by
 * every reference evaluator.
 *
 * Flags: LEAF (no inputs), ELEMWISE (numpy broadcasting over its inputs),
 * TRANSC (transcendental elementwise: needs a float input, too costly to
 * recompute in every consumer),
 * REDUCE (over the axes in a.reduce.axes, kept as size 1), MOVE (moves or
 * copies elements, no arithmetic), CONTRACT (matmul, convolution), INDEX
 * (reads or writes at data-dependent positions), RANDOM (Philox draws keyed
 * by the i32 scalars seed and step, stream a.rng.stream, see runtime/philox.h;
 * the i32 scalar shard picks block `shard` of the stream's elements, so that
 * N processes drawing shards 0..N-1 of a (B, ...) tensor draw together what
 * one process draws for (N*B, ...)),
 * COMMUT (commutative binary). An arity
 * of -1 means any number of inputs (at least one). */

/*  name        arity flags              meaning */
OP(input,       0,  LEAF,              "a named input of an entry")
OP(param,       0,  LEAF,              "a named parameter or state tensor, initialised by a.param.init")
OP(fill,        0,  LEAF,              "out[*] = a.fill.value")
OP(constant,    0,  LEAF,              "out = values fixed when the script ran (schedules, frequencies)")
OP(neg,         1,  ELEMWISE,          "out = -a")
OP(exp,         1,  ELEMWISE|TRANSC,   "out = e^a")
OP(log,         1,  ELEMWISE|TRANSC,   "out = ln a")
OP(sqrt,        1,  ELEMWISE|TRANSC,   "out = sqrt(a)")
OP(rsqrt,       1,  ELEMWISE|TRANSC,   "out = 1 / sqrt(a)")
OP(sin,         1,  ELEMWISE|TRANSC,   "out = sin a")
OP(cos,         1,  ELEMWISE|TRANSC,   "out = cos a")
OP(tanh,        1,  ELEMWISE|TRANSC,   "out = tanh a")
OP(sigmoid,     1,  ELEMWISE|TRANSC,   "out = 1 / (1 + e^-a)")
OP(abs,         1,  ELEMWISE,          "out = |a|")
OP(cast,        1,  ELEMWISE,          "out = a rounded to the node's dtype")
OP(add,         2,  ELEMWISE|COMMUT,   "out = a + b")
OP(sub,         2,  ELEMWISE,          "out = a - b")
OP(mul,         2,  ELEMWISE|COMMUT,   "out = a * b")
OP(div,         2,  ELEMWISE,          "out = a / b")
OP(max,         2,  ELEMWISE|COMMUT,   "out = max(a, b)")
OP(min,         2,  ELEMWISE|COMMUT,   "out = min(a, b)")
OP(lt,          2,  ELEMWISE,          "out = a < b ? 1 : 0")
OP(le,          2,  ELEMWISE,          "out = a <= b ? 1 : 0")
OP(eq,          2,  ELEMWISE|COMMUT,   "out = a == b ? 1 : 0")
OP(select,      3,  ELEMWISE,          "out = c != 0 ? a : b   (inputs c, a, b)")
OP(reduce_sum,  1,  REDUCE,            "out = sum of a over a.reduce.axes")
OP(reduce_max,  1,  REDUCE,            "out = max of a over a.reduce.axes")
OP(reshape,     1,  MOVE,              "out = a with the same elements in a new shape")
OP(permute,     1,  MOVE,              "out[i_perm[0], ...] = a[i_0, ...]: out dim k is a dim perm[k]")
OP(broadcast,   1,  MOVE,              "out = a repeated along its size-1 (or missing leading) dims")
OP(slice,       1,  MOVE,              "out[i] = a[start + i*step] per axis")
OP(concat,      -1, MOVE,              "out = inputs joined along a.concat.axis")
OP(pad,         1,  MOVE,              "out = a with lo/hi elements of value added per axis")
OP(upsample2d,  1,  MOVE,              "out[n,c,y,x] = a[n,c,y/s,x/s]   (nearest)")
OP(matmul,      2,  CONTRACT,          "out[..,m,n] = sum_k a[..,m,k] * b[..,k,n]")
OP(conv2d,      2,  CONTRACT,          "out[n,o,y,x] = sum_c,i,j a[n,c,y*sy+i-pt,x*sx+j-pl] * w[o,c,i,j]")
OP(conv2d_grad_input,  2, CONTRACT,    "out[n,c,h,w] = sum_o,i,j g[n,o,y,x] * w[o,c,i,j] where h = y*sy+i-pt, w = x*sx+j-pl")
OP(conv2d_grad_weight, 2, CONTRACT,    "out[o,c,i,j] = sum_n,y,x a[n,c,y*sy+i-pt,x*sx+j-pl] * g[n,o,y,x]")
OP(gather,      2,  INDEX,             "out[i.., r..] = a[idx[i..], r..]   (idx is i32)")
OP(scatter_add, 2,  INDEX,             "out = 0; out[idx[i..], r..] += a[i.., r..]   (gather's adjoint)")
OP(rng_uniform, 3,  RANDOM,            "out[e] = uniform in (0, 1], element shard*numel + e of stream (seed, step<<16 | a.rng.stream)")
OP(rng_normal,  3,  RANDOM,            "out[e] = N(0, 1) by Box-Muller, element shard*numel + e of stream (seed, step<<16 | a.rng.stream)")

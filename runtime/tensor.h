/* tensor: the named, host-resident tensors that the runtime and the
 * compiler exchange (checkpoints, inputs, outputs).
 *
 * A tensor owns its data (malloc'd, row-major, little-endian as on disk).
 * A tensor set is an ordered list of tensors with unique names plus an
 * optional list of string metadata pairs (safetensors' "__metadata__").
 * Functions return RT_OK or a negative status and never exit. */
#ifndef DDPMC_RUNTIME_TENSOR_H
#define DDPMC_RUNTIME_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define RT_MAXDIM 8

enum { RT_OK = 0, RT_ERR = -1 };

/* Storage types. The graph IR computes in F32, F16, BF16 and I32; the
 * others exist so that files written by torch can be read and converted. */
typedef enum {
	RT_F32, RT_F16, RT_BF16, RT_I32, RT_F64, RT_I64, RT_U8, RT_NDTYPE
} rt_dtype;

typedef struct {
	char *name;
	rt_dtype dtype;
	int rank;
	int64_t shape[RT_MAXDIM];
	void *data;             /* numel * rt_dtype_size(dtype) bytes */
} rt_tensor;

typedef struct {
	char *key, *value;
} rt_meta;

/* index: a hash table of the names (open addressing, a power-of-two
 * capacity at least twice n; slot = position in t + 1, 0 when empty) that
 * rt_set_add keeps, so that finding a name is O(1) and reading n tensors
 * O(n). A set built by hand (index NULL) is searched linearly. */
typedef struct {
	rt_tensor *t;
	int n, cap;
	rt_meta *meta;
	int nmeta, metacap;
	int *index;
	int indexcap;
} rt_tensorset;

size_t rt_dtype_size(rt_dtype dt);
const char *rt_dtype_name(rt_dtype dt);   /* safetensors spelling: "F32", "BF16", ... */
int rt_dtype_parse(const char *s, rt_dtype *out);  /* RT_OK or RT_ERR */
int64_t rt_numel(int rank, const int64_t *shape);

/* Adds a zero-filled tensor (name copied); returns it, or NULL when out of
 * memory or when the name is already present. */
rt_tensor *rt_set_add(rt_tensorset *s, const char *name, rt_dtype dt,
                      int rank, const int64_t *shape);
rt_tensor *rt_set_find(const rt_tensorset *s, const char *name);
int rt_set_meta(rt_tensorset *s, const char *key, const char *value);
const char *rt_get_meta(const rt_tensorset *s, const char *key);
void rt_set_free(rt_tensorset *s);
/* The first tensor of a floating-point dtype holding a NaN or an
 * infinity (its element index in *at), or NULL when every value is finite. */
const rt_tensor *rt_set_nonfinite(const rt_tensorset *s, int64_t *at);

/* Scalar conversions used wherever low-precision values are stored:
 * round to nearest even, NaN preserved. */
uint16_t rt_f32_to_bf16(float f);
float rt_bf16_to_f32(uint16_t h);
uint16_t rt_f32_to_f16(float f);
float rt_f16_to_f32(uint16_t h);

/* Element i of a tensor of any dtype, as a double; and the reverse, rounding
 * to the dtype (integers round to nearest and saturate). */
double rt_load(rt_dtype dt, const void *data, int64_t i);
void rt_store(rt_dtype dt, void *data, int64_t i, double v);

#endif

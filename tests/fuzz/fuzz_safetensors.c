/* fuzz_safetensors: rt_st_parse on arbitrary bytes (safetensors.h).
 * Contract: RT_OK with every tensor holding exactly numel elements of its
 * dtype, or RT_ERR with "fuzz.safetensors: ..." and the set left empty. */
#include <string.h>

#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rt_tensorset ts = { 0 };
	char err[512];
	if (rt_st_parse(data, size, "fuzz.safetensors", &ts, err, sizeof err) != RT_OK) {
		fuzz_check_message(err, "fuzz.safetensors: ");
		FUZZ_CHECK(ts.n == 0 && ts.t == NULL && ts.nmeta == 0 && ts.meta == NULL);
		return 0;
	}
	for (int i = 0; i < ts.n; i++) {
		const rt_tensor *t = &ts.t[i];
		int64_t numel = rt_numel(t->rank, t->shape);
		FUZZ_CHECK(numel >= 0 && rt_set_find(&ts, t->name) == t);
		fuzz_touch(t->data, (size_t)numel * rt_dtype_size(t->dtype));
	}
	for (int k = 0; k < ts.nmeta; k++)
		FUZZ_CHECK(rt_get_meta(&ts, ts.meta[k].key) != NULL);
	rt_set_free(&ts);
	return 0;
}

/* fuzz_json: rt_json_parse on arbitrary bytes (json.h), which need not
 * be NUL-terminated. Contract: RT_OK with a tree whose strings survive
 * a round trip through the writer's escaper (rt_sb_json_string) and whose
 * object lookups find the first member of a key; or RT_ERR with
 * "at byte N: ..." and the tree cleared. */
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "tensor.h"

/* s, escaped by the writer and parsed back, is s again. */
static void check_string(const char *s)
{
	rt_strbuf b = { 0 };
	rt_json back;
	char err[256];
	rt_sb_json_string(&b, s);
	FUZZ_CHECK(!b.oom);
	FUZZ_CHECK(rt_json_parse(b.p, b.len, &back, err, sizeof err) == RT_OK);
	FUZZ_CHECK(back.type == RT_JSTR && strcmp(back.str, s) == 0);
	rt_json_free(&back);
	rt_sb_free(&b);
}

static void check_tree(const rt_json *j)
{
	if (j->type == RT_JSTR)
		check_string(j->str);
	for (int k = 0; j->type == RT_JOBJ && k < j->n; k++) {
		const rt_json *first = rt_json_get(j, j->keys[k]);
		FUZZ_CHECK(first && first <= &j->kids[k] &&
		           strcmp(j->keys[first - j->kids], j->keys[k]) == 0);
		check_string(j->keys[k]);
	}
	for (int k = 0; (j->type == RT_JOBJ || j->type == RT_JARR) && k < j->n; k++)
		check_tree(&j->kids[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rt_json j;
	char err[256];
	if (rt_json_parse((const char *)data, size, &j, err, sizeof err) != RT_OK) {
		fuzz_check_message(err, "at byte ");
		FUZZ_CHECK(j.type == RT_JNULL && j.kids == NULL && j.str == NULL);
		return 0;
	}
	check_tree(&j);
	rt_json_free(&j);
	return 0;
}

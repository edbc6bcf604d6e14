/* fuzz_checkpoint: a checkpoint file loaded into a program's state, as
 * train --resume, sample and eval do: rt_st_parse, then rt_state_init of
 * a fixed program (below) from the tensors read.
 *
 * The program has a param of each dtype the graph computes in, trainable
 * ones (the checkpoint must hold them) and others (taken when present,
 * else initialised), scalars, and a copy. Contract: RT_OK with one tensor
 * per param, of its dtype and shape; or RT_ERR with a message naming the
 * checkpoint. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "program.h"
#include "safetensors.h"
#include "state.h"

#define PARAM(name, dtype, shape, trainable, init, from) \
	"{\"name\": \"" name "\", \"dtype\": \"" dtype "\", \"shape\": " shape ", " \
	"\"trainable\": " trainable ", \"init\": \"" init "\", \"a\": -0.5, \"b\": 0.5, " \
	"\"from\": " from ", \"index\": 0}"

static const char program_json[] =
	"{\"model\": \"fuzz.lua\", \"meta\": {}, \"entries\": [], \"params\": ["
	PARAM("w", "F32", "[2, 3]", "true", "uniform", "null") ", "
	PARAM("b", "F16", "[3]", "true", "normal", "null") ", "
	PARAM("g", "BF16", "[1, 1, 2]", "true", "ones", "null") ", "
	PARAM("ema.w", "F32", "[2, 3]", "false", "copy", "\"w\"") ", "
	PARAM("train.iteration", "I32", "[]", "false", "zeros", "null") ", "
	PARAM("hp.lr", "F32", "[]", "false", "ones", "null") "]}";

static const rt_program *program(void)
{
	static rt_program p;
	static int parsed;
	char err[512];
	if (!parsed && rt_program_parse(program_json, strlen(program_json), NULL, 0, NULL, 0, &p,
	                                err, sizeof err) != RT_OK) {
		fprintf(stderr, "fuzz_checkpoint: %s\n", err);
		FUZZ_CHECK(!"the fixed program parses");
	}
	parsed = 1;
	return &p;
}

/* The state matches the program: one tensor per param, in order. */
static void check_state(const rt_program *p, const rt_tensorset *state)
{
	FUZZ_CHECK(state->n == p->nparams);
	for (int i = 0; i < p->nparams; i++) {
		const rt_tensor *t = &state->t[i];
		const rt_param *q = &p->params[i];
		FUZZ_CHECK(strcmp(t->name, q->name) == 0 && t->dtype == q->dtype &&
		           t->rank == q->rank &&
		           memcmp(t->shape, q->shape, (size_t)q->rank * sizeof *q->shape) == 0);
		fuzz_touch(t->data, (size_t)q->numel * rt_dtype_size(q->dtype));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const rt_program *p = program();
	rt_tensorset ckpt = { 0 }, state = { 0 };
	char err[512];
	if (rt_st_parse(data, size, "ckpt", &ckpt, err, sizeof err) != RT_OK) {
		fuzz_check_message(err, "ckpt: ");
		return 0;
	}
	if (rt_state_init(p, 1, &ckpt, "ckpt", &state, err, sizeof err) == RT_OK)
		check_state(p, &state);
	else
		fuzz_check_message(err, "ckpt: ");
	rt_set_free(&state);
	rt_set_free(&ckpt);
	return 0;
}

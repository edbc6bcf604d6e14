/* run: the command line of a compiled executable, from argv and the
 * embedded program to an exit status: parse (cli.c), load the program,
 * dispatch to train.c, sample.c, eval.c, export.c, tune.c, cli_info or
 * cli_version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The model's hash is FNV-1a 64 of the descriptor JSON followed by its
 * data (the constants), then the OpenCL program's where it has its own:
 * what ddpmc embedded, so two executables of the same script, options
 * and ddpmc share it. */
int cli_version(const rt_embedded *emb, const rt_program *p)
{
	uint64_t h = rt_fnv1a(RT_FNV1A_START, emb->json, (size_t)emb->json_len);
	h = rt_fnv1a(h, emb->data, (size_t)emb->data_len);
	if (emb->cl_json_len > 0) {
		h = rt_fnv1a(h, emb->cl_json, (size_t)emb->cl_json_len);
		h = rt_fnv1a(h, emb->cl_data, (size_t)emb->cl_data_len);
	}
	printf("%s\n", emb->build ? emb->build : "ddpmc (version unknown)");
	printf("model: %s (descriptor fnv1a64 %016llx)\n", p->model, (unsigned long long)h);
	return 0;
}

/* Whether b has a's entries in a's order and a's state tensors (name,
 * dtype, shape), as two lowerings of one graph have. */
static int same_interface(const rt_program *a, const rt_program *b)
{
	int same = a->nentries == b->nentries && a->nparams == b->nparams;
	for (int i = 0; same && i < a->nentries; i++)
		same = !strcmp(a->entries[i].name, b->entries[i].name);
	for (int i = 0; same && i < a->nparams; i++) {
		const rt_param *x = &a->params[i], *y = &b->params[i];
		same = !strcmp(x->name, y->name) && x->dtype == y->dtype && x->rank == y->rank &&
		       !memcmp(x->shape, y->shape, (size_t)x->rank * sizeof *x->shape);
	}
	return same;
}

/* The executable's OpenCL program into *gp when it has one of its own
 * (compiled for both targets), as p->opencl: the entries of p, in order,
 * lowered for a GPU. 1 when there is one, 0 when not, -1 on error. */
static int load_opencl(const rt_embedded *emb, rt_program *p, rt_program *gp, char *err, size_t errlen)
{
	if (emb->cl_json_len <= 0)
		return 0;
	if (rt_program_parse(emb->cl_json, (size_t)emb->cl_json_len, emb->cl_data, emb->cl_data_len, NULL, 0,
	                     gp, err, errlen) != RT_OK)
		return -1;
	if (!same_interface(p, gp)) {
		snprintf(err, errlen, "program: the OpenCL program's entries or state are not the CPU program's");
		rt_program_free(gp);
		return -1;
	}
	gp->cl_source = emb->cl_source;
	gp->cl_source_len = emb->cl_source_len;
	p->opencl = gp;
	return 1;
}

int cli_run(int argc, char **argv, const rt_embedded *emb)
{
	cli_opts o;
	unsigned which;
	char err[1024];
	rt_program p, gp;
	int rc = cli_parse(argc, argv, &o, &which);
	if (rc != 0 || !which)
		return rc;
	if (rt_program_parse(emb->json, (size_t)emb->json_len, emb->data, emb->data_len,
	                     emb->kernels, emb->nkernels, &p, err, sizeof err) != RT_OK)
		return cli_fail(&o, "%s", err);
	p.cl_source = emb->cl_source;
	p.cl_source_len = emb->cl_source ? emb->cl_source_len : 0;
	int own = load_opencl(emb, &p, &gp, err, sizeof err);
	if (own < 0) {
		rt_program_free(&p);
		return cli_fail(&o, "%s", err);
	}
	rc = which == CLI_TRAIN ? cli_train(&o, &p) : which == CLI_SAMPLE ? cli_sample(&o, &p)
	   : which == CLI_EVAL ? cli_eval(&o, &p) : which == CLI_EXPORT ? cli_export(&o, &p)
	   : which == CLI_TUNE ? cli_tune(&o, &p)
	   : which == CLI_VERSION ? cli_version(emb, &p) : cli_info(&p);
	if (own)
		rt_program_free(&gp);
	rt_program_free(&p);
	return rc;
}

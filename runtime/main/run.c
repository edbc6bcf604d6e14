/* run: the command line of a compiled executable, from argv and the
 * embedded program to an exit status: parse (cli.c), load the program,
 * dispatch to train.c, sample.c, eval.c, export.c, cli_info or
 * cli_version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* FNV-1a, 64 bits, continuing from h (start: 14695981039346656037). */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211u;
	return h;
}

/* The model's hash is FNV-1a 64 of the descriptor JSON followed by its
 * data (the constants): what ddpmc embedded, so two executables of the
 * same script, options and ddpmc share it. */
int cli_version(const rt_embedded *emb, const rt_program *p)
{
	uint64_t h = fnv1a(14695981039346656037u, (const unsigned char *)emb->json, emb->json_len);
	h = fnv1a(h, emb->data, emb->data_len);
	printf("%s\n", emb->build ? emb->build : "ddpmc (version unknown)");
	printf("model: %s (descriptor fnv1a64 %016llx)\n", p->model, (unsigned long long)h);
	return 0;
}

int cli_run(int argc, char **argv, const rt_embedded *emb)
{
	cli_opts o;
	unsigned which;
	char err[1024];
	rt_program p;
	int rc = cli_parse(argc, argv, &o, &which);
	if (rc != 0 || !which)
		return rc;
	if (rt_program_parse(emb->json, (size_t)emb->json_len, emb->data, emb->data_len,
	                     emb->kernels, emb->nkernels, &p, err, sizeof err) != RT_OK)
		return cli_fail(&o, "%s", err);
	p.cl_source = emb->cl_source;
	p.cl_source_len = emb->cl_source ? emb->cl_source_len : 0;
	rc = which == CLI_TRAIN ? cli_train(&o, &p) : which == CLI_SAMPLE ? cli_sample(&o, &p)
	   : which == CLI_EVAL ? cli_eval(&o, &p) : which == CLI_EXPORT ? cli_export(&o, &p)
	   : which == CLI_VERSION ? cli_version(emb, &p) : cli_info(&p);
	rt_program_free(&p);
	return rc;
}

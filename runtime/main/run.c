/* run: the command line of a compiled executable, from argv and the
 * embedded program to an exit status: parse (cli.c), load the program,
 * dispatch to train.c, sample.c, eval.c or cli_info; `export` parses its own flags
 * (export.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_run(int argc, char **argv, const rt_embedded *emb)
{
	cli_opts o;
	unsigned which;
	char err[1024];
	rt_program p;
	if (argc >= 2 && strcmp(argv[1], "export") == 0) {
		const char *slash = strrchr(argv[0], '/');
		o.prog = slash ? slash + 1 : argv[0];
		if (rt_program_parse(emb->json, (size_t)emb->json_len, emb->data, emb->data_len,
		                     emb->kernels, emb->nkernels, &p, err, sizeof err) != RT_OK)
			return cli_fail(&o, "%s", err);
		int rc = cli_export(argc, argv, &p);
		rt_program_free(&p);
		return rc;
	}
	int rc = cli_parse(argc, argv, &o, &which);
	if (rc != 0 || !which)
		return rc;
	if (rt_program_parse(emb->json, (size_t)emb->json_len, emb->data, emb->data_len,
	                     emb->kernels, emb->nkernels, &p, err, sizeof err) != RT_OK)
		return cli_fail(&o, "%s", err);
	p.cl_source = emb->cl_source;
	p.cl_source_len = emb->cl_source ? emb->cl_source_len : 0;
	rc = which == CLI_TRAIN ? cli_train(&o, &p) : which == CLI_SAMPLE ? cli_sample(&o, &p)
	   : which == CLI_EVAL ? cli_eval(&o, &p) : cli_info(&p);
	rt_program_free(&p);
	return rc;
}

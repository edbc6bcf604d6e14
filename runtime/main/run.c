/* run: the command line of a compiled executable, from argv and the
 * embedded program to an exit status: parse (cli.c), load the program,
 * dispatch to train.c, sample.c or cli_info. */
#include <stdio.h>

#include "cli.h"

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
	rc = which == CLI_TRAIN ? cli_train(&o, &p) : which == CLI_SAMPLE ? cli_sample(&o, &p)
	   : cli_info(&p);
	rt_program_free(&p);
	return rc;
}

/* dist.c: data-parallel training over MPI (cli.h, "data parallelism").
 *
 * A program started by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE,
 * MPICH's hydra PMI_SIZE, PMIx launchers PMIX_RANK) is one of N ranks of
 * MPI_COMM_WORLD; started otherwise, or built without MPI (DDPMC_MPI
 * undefined), it is rank 0 of 1 and never calls MPI, so a plain
 * `./unet train` needs no launcher and pays nothing.
 *
 * Every step the ranks exchange one message: the gradient sums
 * (optim.grad_sum.NAME, f32) packed end to end, then a few extra values
 * (the loss, a stop flag), summed by one MPI_Allreduce; each rank then
 * stores the sums' mean back. Packing costs two copies of the gradients,
 * small beside the step, and makes the exchange one large message (the
 * bandwidth-bound case MPI's allreduce algorithms are built for) instead of
 * a latency per parameter tensor. */
#include <stdlib.h>
#include <string.h>

#ifdef DDPMC_MPI
#include <mpi.h>
#endif

#include "cli.h"

int cli_dist_open(cli_dist *d)
{
	memset(d, 0, sizeof *d);
	d->size = 1;
	if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
		return 0;
#ifdef DDPMC_MPI
	if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
		return 1;
	d->mpi = 1;
	MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &d->size);
	return 0;
#else
	return 2;               /* copies of a one-process run would clobber each other */
#endif
}

int cli_dist_bind(cli_dist *d, rt_tensorset *state, const char *prefix)
{
	size_t len = strlen(prefix);
	for (int i = 0; i < state->n; i++) {
		rt_tensor *t = &state->t[i];
		if (strncmp(t->name, prefix, len) != 0 || t->dtype != RT_F32)
			continue;
		rt_tensor **grown = realloc(d->bound, (size_t)(d->nbound + 1) * sizeof *grown);
		if (!grown)
			return 1;
		d->bound = grown;
		d->bound[d->nbound++] = t;
		d->npack += rt_numel(t->rank, t->shape);
	}
	d->pack = malloc((size_t)(d->npack + CLI_DIST_EXTRA) * sizeof *d->pack);
	return d->pack == NULL;
}

#ifdef DDPMC_MPI
/* Copies the bound tensors into the pack (in), or their mean out of it. */
static void pack_all(cli_dist *d, int in)
{
	float *p = d->pack, inv = 1.0f / (float)d->size;
	for (int i = 0; i < d->nbound; i++) {
		float *t = d->bound[i]->data;
		int64_t n = rt_numel(d->bound[i]->rank, d->bound[i]->shape);
		if (in)
			memcpy(p, t, (size_t)n * sizeof *p);
		else
			for (int64_t k = 0; k < n; k++)
				t[k] = p[k] * inv;
		p += n;
	}
}
#endif

int cli_dist_reduce(cli_dist *d, double *extra, int nextra)
{
	if (d->size == 1)
		return 0;
#ifdef DDPMC_MPI
	pack_all(d, 1);
	for (int i = 0; i < nextra; i++)
		d->pack[d->npack + i] = (float)extra[i];
	if (d->npack + nextra > INT32_MAX ||
	    MPI_Allreduce(MPI_IN_PLACE, d->pack, (int)(d->npack + nextra), MPI_FLOAT, MPI_SUM,
	                  MPI_COMM_WORLD) != MPI_SUCCESS)
		return 1;
	pack_all(d, 0);
	for (int i = 0; i < nextra; i++)
		extra[i] = d->pack[d->npack + i];
#endif
	return 0;
}

int cli_dist_same(const cli_dist *d, int64_t v)
{
#ifdef DDPMC_MPI
	int64_t lo = v, hi = v;
	if (d->mpi && (MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD) ||
	               MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD)))
		return 0;
	return lo == hi;
#else
	return 1;
#endif
}

void cli_dist_close(cli_dist *d, int rc)
{
	free(d->bound);
	free(d->pack);
#ifdef DDPMC_MPI
	if (d->mpi && rc && d->size > 1)
		MPI_Abort(MPI_COMM_WORLD, rc);
	if (d->mpi)
		MPI_Finalize();
#endif
	memset(d, 0, sizeof *d);
}

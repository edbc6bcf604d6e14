/* cl_tune.c: tuning the OpenCL device (device.h, rt_device_tune). Every
 * variant of a kernel (program.h "alts": a tiled contraction's other
 * micro-tiles, other work-group sizes) is timed on the device after one
 * real run of its entry, and the fastest is kept in the cache folder
 * beside the program binaries, in a file named by the binaries' key (the
 * source, the device, its driver and platform), cl-KEY.tune:
 *
 *   # ddpmc OpenCL tuning: OpenCL 0.0: NVIDIA H200 (NVIDIA CUDA)
 *   e0_k14_conv2d	2	412.1 380.2 301.0 355.9	e0_k14_conv2d_m8x8@256
 *
 * a line per OpenCL kernel with variants: its name (the compiler's
 * choice's), the variant chosen (0: the compiler's), then, for people,
 * each variant's device time in microseconds (-1: it does not launch on
 * this device, or its program part does not build) and the chosen one's
 * OpenCL kernel @ work-group size. Kernels that share one OpenCL kernel (program.h) have the same
 * variants and share its line: tune times one of them. cl.c reads the
 * file at every open: a kernel launches the variant its line names, and
 * only the parts those need are built. A file that
 * does not parse is reported and ignored whole. Entries are tuned the
 * most FLOPs first, and so are the kernels of each, each timed as soon
 * as the parts of its variants, building in the background, are built;
 * the file is written after each entry, so a tune stopped early keeps
 * the train step's choices. A tune starts from the file the device opened with: its
 * kernels are not timed again, so a tune stopped by its time limit is
 * finished by the next. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_impl.h"
#include "exec.h"
#include "json.h"

enum { REPS = 5 };              /* timed launches per variant, after one to warm up */
#define MARGIN 0.03             /* another variant replaces the compiler's when this much faster */

/* --- the file ---------------------------------------------------------------- */

/* f(c, e, i, ctx) for every launch (kernel i of entry e) of OpenCL kernel
 * `name`: kernels that share one have the same variants, so one choice
 * serves them all. Returns how many, or -1 when f failed. */
typedef int (*launch_fn)(cl_dev *c, int e, int i, void *ctx, char *err, size_t errlen);
static int each_launch_of(cl_dev *c, const char *name, launch_fn f, void *ctx, char *err, size_t errlen)
{
	const rt_program *p = c->base.p;
	int n = 0;
	for (int e = 0; e < p->nentries; e++)
		for (int i = 0; i < p->entries[e].nk; i++) {
			const rt_cl_launch *l = &p->entries[e].k[i].cl;
			if (!l->nv || strcmp(l->v[0].name, name))
				continue;
			if (f(c, e, i, ctx, err, errlen))
				return -1;
			n++;
		}
	return n;
}

/* Kernel i of entry e launches variant *(int *)j once opened. */
static int set_choice(cl_dev *c, int e, int i, void *j, char *err, size_t errlen)
{
	const rt_cl_launch *l = &c->base.p->entries[e].k[i].cl;
	int v = *(int *)j;
	if (v >= l->nv) {
		snprintf(err, errlen, "'%.100s' has variants 0 to %d, not %d", l->v[0].name, l->nv - 1, v);
		return -1;
	}
	c->ent[e].choice[i] = v;
	return 0;
}

/* One line "NAME\tCHOICE..." into the choices; NULL, or what is wrong. */
static const char *parse_line(cl_dev *c, char *line, char *why, size_t len)
{
	char *tab = strchr(line, '\t'), *end;
	if (!tab)
		return "expected a kernel's name, a tab and its variant";
	*tab = 0;
	long j = strtol(tab + 1, &end, 10);
	if (end == tab + 1 || (*end && *end != '\t' && *end != '\n') || j < 0 || j >= RT_CL_MAX_VARIANTS)
		return "expected a kernel's name, a tab and its variant";
	int v = (int)j, n = each_launch_of(c, line, set_choice, &v, why, len);
	if (n == 0)
		snprintf(why, len, "no kernel '%.100s' in this program", line);
	return n > 0 ? NULL : why;
}

static void clear_choices(cl_dev *c)
{
	for (int e = 0; e < c->base.p->nentries; e++)
		memset(c->ent[e].choice, 0, (size_t)c->base.p->entries[e].nk * sizeof(int));
}

static int has_variants(const rt_entry *e)
{
	for (int i = 0; i < e->nk; i++)
		if (e->k[i].cl.nv > 1)
			return 1;
	return 0;
}

/* On a terminal, that `tune` would time variants (nothing elsewhere:
 * logs stay as they were). */
static void suggest_tuning(const rt_program *p)
{
	if (!isatty(STDERR_FILENO))
		return;
	for (int e = 0; e < p->nentries; e++)
		if (has_variants(&p->entries[e])) {
			fprintf(stderr, "note: the OpenCL kernels run the compiler's choices; this "
			        "executable's `tune` command times their variants on this device once\n");
			return;
		}
}

void cl_tuning_load(cl_dev *c)
{
	char path[4200], line[1024], why[256];
	const char *bad = NULL;
	int n = 0;
	FILE *f = rt_cl_cache_path(&c->source_key, ".tune", path, sizeof path) ? fopen(path, "r") : NULL;
	if (!f) {
		suggest_tuning(c->base.p);
		return;
	}
	while (!bad && fgets(line, sizeof line, f)) {
		n++;
		if (!strchr(line, '\n') && !feof(f)) {
			bad = "a line longer than 1023 bytes";
		} else if (line[0] != '#') {
			rt_sb_printf(&c->tuned, "%s%s", line, strchr(line, '\n') ? "" : "\n");
			bad = parse_line(c, line, why, sizeof why);
		}
	}
	fclose(f);
	if (!bad && !c->tuned.oom)
		return;
	fprintf(stderr, "warning: OpenCL tuning file %s:%d: %s; ignored: every kernel runs the "
	        "compiler's choice (tune again to replace it)\n", path, n, bad ? bad : "out of memory");
	clear_choices(c);
	rt_sb_free(&c->tuned);
}

/* --- timing -------------------------------------------------------------------- */

/* A line of tune's log, flushed: a tune stopped from outside (a time
 * limit's kill) leaves every line it wrote. */
static void say(FILE *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *log, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(log, fmt, ap);
	va_end(ap);
	fflush(log);
}


/* Entry e once, from `state` and zero inputs: every buffer it binds then
 * exists and holds a real run's values. */
static int run_once(cl_dev *c, const rt_entry *e, rt_tensorset *state, char *err, size_t errlen)
{
	rt_tensorset in = { 0 }, out = { 0 };
	int rc = RT_OK;
	for (int b = 0; b < e->nbuf && rc == RT_OK; b++) {
		const rt_buffer *x = &e->buf[b];
		if (x->kind == RT_BUF_INPUT && !rt_set_add(&in, x->name, x->dtype, x->rank, x->shape))
			rc = cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", e->name);
	}
	if (rc == RT_OK)
		rc = rt_device_run(&c->base, e, state, &in, &out, err, errlen);
	rt_set_free(&in);
	rt_set_free(&out);
	return rc;
}

/* Into *t the device seconds of one launch of variant j of kernel i
 * (the fastest of REPS after a warm-up), or -1 when it does not launch
 * on this device (its work-groups too large for its registers, its
 * program part left out: cl_build_start); RT_ERR
 * when the queue failed. */
static int time_variant(cl_dev *c, const rt_entry *e, cl_entry *ce, int i, int j, double *t,
                        char *err, size_t errlen)
{
	char why[512];
	cl_event ev[REPS + 1];
	cl_kernel k = cl_make_kernel(c, e, i, j, why, sizeof why);
	int n = 0;
	*t = -1;
	if (!k)
		return RT_OK;
	while (n <= REPS && cl_enqueue(c, e, ce, i, j, k, &ev[n]) == CL_SUCCESS)
		n++;
	cl_int rc = clFinish(c->q);
	for (int r = 1; r < n && n == REPS + 1 && rc == CL_SUCCESS; r++) {
		double s = cl_event_seconds(ev[r]);
		if (s >= 0 && (*t < 0 || s < *t))
			*t = s;
	}
	for (int r = 0; r < n; r++)
		clReleaseEvent(ev[r]);
	clReleaseKernel(k);
	return rc == CL_SUCCESS ? RT_OK : cl_fail(err, errlen, rc, "timing %s", e->k[i].cl.v[j].name);
}

/* Kernel i's variant: the fastest when it beats the compiler's by MARGIN. */
static int fastest(const double *t, int nv)
{
	int best = 0;
	for (int j = 1; j < nv; j++)
		if (t[j] >= 0 && (t[best] < 0 || t[j] < t[best]))
			best = j;
	return t[0] < 0 || t[best] < (1 - MARGIN) * t[0] ? best : 0;
}

/* Kernel i launches variant j from now on. */
static int choose(cl_dev *c, const rt_entry *e, cl_entry *ce, int i, int j, char *err, size_t errlen)
{
	if (ce->choice[i] == j)
		return RT_OK;
	cl_kernel k = cl_make_kernel(c, e, i, j, err, errlen);
	if (!k)
		return RT_ERR;
	clReleaseKernel(ce->k[i]);
	ce->k[i] = k;
	ce->choice[i] = j;
	return RT_OK;
}

/* What tune has chosen so far: tuned[e][i] once kernel i of entry e
 * launches its OpenCL kernel's choice. */
typedef struct {
	char **tuned;
	int j;                  /* the variant being chosen */
	double deadline;        /* rt_seconds() after which no kernel is timed */
	int stopped;            /* the deadline left kernels untimed */
} choices;

/* Kernel i of entry e launches variant j from now on. */
static int choose_launch(cl_dev *c, int e, int i, void *ctx, char *err, size_t errlen)
{
	choices *ch = ctx;
	ch->tuned[e][i] = 1;
	return choose(c, &c->base.p->entries[e], &c->ent[e], i, ch->j, err, errlen);
}

/* Kernel i of entry e counts as tuned. */
static int mark_tuned(cl_dev *c, int e, int i, void *ctx, char *err, size_t errlen)
{
	(void)c, (void)err, (void)errlen;
	((choices *)ctx)->tuned[e][i] = 1;
	return 0;
}

/* The kernels of the tuning file the device opened with (c->tuned):
 * tuned already, their lines the start of file. */
static void tuned_before(cl_dev *c, choices *ch, rt_strbuf *file)
{
	char name[1024], err[8];
	for (const char *l = c->tuned.p; l && *l; l += strcspn(l, "\n") + 1) {
		snprintf(name, sizeof name, "%.*s", (int)strcspn(l, "\t"), l);
		each_launch_of(c, name, mark_tuned, ch, err, sizeof err);
		rt_sb_put(file, l, strcspn(l, "\n") + 1);
	}
}

/* Whether kernel i of entry e has variants not timed yet. */
static int untimed(const cl_dev *c, const choices *ch, int e, int i)
{
	return c->base.p->entries[e].k[i].cl.nv > 1 && !ch->tuned[e][i];
}

/* How many OpenCL kernels with variants are left untimed, each counted
 * once however many launches share it (they are marked as counted). */
static int count_left(cl_dev *c, choices *ch)
{
	int n = 0;
	char err[8];
	for (int e = 0; e < c->base.p->nentries; e++)
		for (int i = 0; i < c->base.p->entries[e].nk; i++)
			if (untimed(c, ch, e, i)) {
				n++;
				each_launch_of(c, c->base.p->entries[e].k[i].cl.v[0].name, mark_tuned, ch, err, sizeof err);
			}
	return n;
}

/* order[0..n) sorted by key[order[i]], the largest first, ties as they
 * were (insertion sort: entries, or one entry's kernels). */
static void largest_first(int *order, int n, const double *key)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && key[order[j]] > key[order[j - 1]]; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
}

/* Entry ei's kernels order[0..n) that are still not tuned (another's
 * choice may have served them), until the deadline: timed once their
 * variants' parts are built (b), chosen for each launch, a line in file. */
static int tune_kernels(cl_dev *c, int ei, const int *order, int n, cl_builds *b, choices *ch, FILE *log,
                        rt_strbuf *file, char *err, size_t errlen)
{
	const rt_entry *e = &c->base.p->entries[ei];
	double before = 0, after = 0, t0 = rt_seconds();
	int tuned = 0, changed = 0, launches = 0;
	for (int x = 0; x < n; x++) {
		int i = order[x];
		const rt_cl_launch *l = &e->k[i].cl;
		double t[RT_CL_MAX_VARIANTS];
		if (!untimed(c, ch, ei, i))
			continue;
		if (rt_seconds() >= ch->deadline || !cl_build_ready(b, l, ch->deadline)) {
			ch->stopped = 1;
			break;
		}
		for (int j = 0; j < l->nv; j++)
			if (time_variant(c, e, &c->ent[ei], i, j, &t[j], err, errlen))
				return RT_ERR;
		int j = ch->j = fastest(t, l->nv), shared = each_launch_of(c, l->v[0].name, choose_launch, ch, err, errlen);
		if (shared < 0)
			return RT_ERR;
		rt_sb_printf(file, "%s\t%d\t", l->v[0].name, j);
		for (int v = 0; v < l->nv; v++)
			rt_sb_printf(file, "%s%.1f", v ? " " : "", t[v] < 0 ? -1 : 1e6 * t[v]);
		rt_sb_printf(file, "\t%s@%lld\n", l->v[j].name, (long long)l->v[j].local);
		tuned++;
		changed += j != 0;
		launches += shared;
		before += t[0] > 0 ? shared * t[0] : 0;
		after += t[j] > 0 ? shared * t[j] : 0;
	}
	say(log, "tune: %s: %d kernels with variants not tuned before, %d changed; their %d launches: "
	        "%.3f ms, tuned %.3f ms (%.1f s)\n", e->name, tuned, changed, launches, 1e3 * before,
	        1e3 * after, rt_seconds() - t0);
	return RT_OK;
}

/* The entries with variants into order, the most FLOPs first (the train
 * step before sampling): a tune stopped early has timed what costs most.
 * Returns their number. */
static int entry_order(const rt_program *p, int *order, double *flops)
{
	int n = 0;
	for (int x = 0; x < p->nentries; x++) {
		flops[x] = p->entries[x].flops;
		if (has_variants(&p->entries[x]))
			order[n++] = x;
	}
	largest_first(order, n, flops);
	return n;
}

/* The choices so far into the tuning file (written again after each
 * entry, so that a tune stopped early keeps what it timed). */
static int keep(cl_dev *c, const rt_strbuf *file, char *path, size_t len, char *err, size_t errlen)
{
	if (rt_cl_cache_put(&c->source_key, ".tune", file->p, file->len, path, len) == 0)
		return RT_OK;
	snprintf(err, errlen, "cannot write the tuning into the cache folder (%s)",
	         path[0] ? path : "none: set DDPMC_CL_CACHE or HOME");
	return RT_ERR;
}

static void choices_free(choices *ch, int nentries)
{
	for (int e = 0; ch->tuned && e < nentries; e++)
		free(ch->tuned[e]);
	free(ch->tuned);
}

static int choices_new(choices *ch, const rt_program *p)
{
	*ch = (choices){ .tuned = calloc((size_t)p->nentries + 1, sizeof *ch->tuned) };
	for (int e = 0; ch->tuned && e < p->nentries; e++)
		if (!(ch->tuned[e] = calloc((size_t)p->entries[e].nk + 1, 1)))
			return RT_ERR;
	return ch->tuned ? RT_OK : RT_ERR;
}

/* Entry ei's kernels not timed yet in the order tune times them, into
 * order: those with the most FLOPs first (the convolutions before the
 * elementwise), so that a tune the deadline stops has timed what costs
 * most. Returns their number, or -1 when out of memory. */
static int untimed_order(const cl_dev *c, const choices *ch, int ei, int *order)
{
	const rt_entry *e = &c->base.p->entries[ei];
	double *flops = malloc((size_t)e->nk * sizeof *flops + 1);
	int n = 0;
	if (!flops)
		return -1;
	for (int i = 0; i < e->nk; i++) {
		flops[i] = e->k[i].flops;
		if (untimed(c, ch, ei, i))
			order[n++] = i;
	}
	largest_first(order, n, flops);
	free(flops);
	return n;
}

/* Entry ei's kernels not timed before: its buffers filled by a run, the
 * parts of their variants built in the background while those built are
 * timed and chosen (until the deadline), the file kept. */
static int tune_entry(cl_dev *c, int ei, rt_tensorset *state, choices *ch, FILE *log, rt_strbuf *file,
                      char *path, size_t pathlen, char *err, size_t errlen)
{
	const rt_entry *e = &c->base.p->entries[ei];
	int *order = malloc((size_t)e->nk * sizeof *order + 1);
	int n = order ? untimed_order(c, ch, ei, order) : -1;
	if (n <= 0) {
		free(order);
		if (n == 0)
			say(log, "tune: %s: every kernel with variants timed before\n", e->name);
		else
			snprintf(err, errlen, "out of memory");
		return n == 0 ? RT_OK : RT_ERR;
	}
	cl_builds *b = NULL;
	int rc = rt_seconds() < ch->deadline ? run_once(c, e, state, err, errlen) : RT_OK;
	if (rc == RT_OK && rt_seconds() >= ch->deadline)
		ch->stopped = 1;
	else if (rc == RT_OK && !(b = cl_build_start(c, e, order, n, ch->deadline, err, errlen)))
		rc = RT_ERR;
	if (b) {
		rc = tune_kernels(c, ei, order, n, b, ch, log, file, err, errlen);
		if (rc == RT_OK)        /* before the builds in progress end: they may take minutes */
			rc = keep(c, file, path, pathlen, err, errlen);
		cl_build_end(b);
	}
	free(order);
	return rc;
}

int cl_tune(rt_device *d, rt_tensorset *state, double seconds, FILE *log, char *err, size_t errlen)
{
	cl_dev *c = (cl_dev *)d;
	const rt_program *p = d->p;
	char path[4200] = "";
	rt_strbuf file = { 0 };
	choices ch = { 0 };
	int *order = calloc((size_t)p->nentries + 1, sizeof *order);
	double *flops = calloc((size_t)p->nentries + 1, sizeof *flops);
	int rc = order && flops && choices_new(&ch, p) == RT_OK ? RT_OK : RT_ERR;
	int n = rc == RT_OK ? entry_order(p, order, flops) : 0;
	if (rc != RT_OK)
		snprintf(err, errlen, "out of memory");
	ch.deadline = seconds < 0 ? HUGE_VAL : rt_seconds() + seconds;
	rt_sb_printf(&file, "# ddpmc OpenCL tuning: %s\n", d->name);
	if (rc == RT_OK)
		tuned_before(c, &ch, &file);
	for (int i = 0; i < n && rc == RT_OK && !ch.stopped; i++)
		rc = tune_entry(c, order[i], state, &ch, log, &file, path, sizeof path, err, errlen);
	if (rc == RT_OK && ch.stopped)
		say(log, "tune: stopped at the time limit (%g s): %d OpenCL kernels with variants left "
		        "untimed; the next tune times them\n", seconds, count_left(c, &ch));
	if (rc == RT_OK)
		rc = keep(c, &file, path, sizeof path, err, errlen);
	if (rc == RT_OK)
		say(log, "tune: kept in %s\n", path);
	choices_free(&ch, p->nentries);
	free(order);
	free(flops);
	rt_sb_free(&file);
	return rc;
}

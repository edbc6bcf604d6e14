/* metrics.c: DIR/metrics.jsonl (cli.h). On --resume the old file is read
 * line by line; the lines up to the checkpoint's step are kept (a line
 * that does not parse ends the reading: a run killed mid-write leaves at
 * most its last line torn), and the file is rewritten with them before
 * new lines are appended. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int push(cli_metrics *mt, const cli_metric *m)
{
	if (mt->n == mt->cap) {
		int64_t cap = mt->cap ? 2 * mt->cap : 256;
		cli_metric *p = realloc(mt->m, (size_t)cap * sizeof *p);
		if (!p)
			return -1;
		mt->m = p;
		mt->cap = cap;
	}
	mt->m[mt->n++] = *m;
	return 0;
}

static double num(const rt_json *obj, const char *key)
{
	const rt_json *v = rt_json_get(obj, key);
	return v && v->type == RT_JNUM ? v->num : NAN;
}

/* One line into *m; 0 when it is a metrics object with a step. */
static int parse_line(const char *line, size_t len, cli_metric *m)
{
	rt_json j;
	char err[128];
	if (rt_json_parse(line, len, &j, err, sizeof err) != RT_OK)
		return -1;
	const rt_json *step = rt_json_get(&j, "step");
	int ok = j.type == RT_JOBJ && step && step->type == RT_JNUM && step->isint;
	if (ok) {
		m->step = step->i;
		m->loss = num(&j, "loss");
		m->loss_mean = num(&j, "loss_mean");
		m->lr = num(&j, "lr");
		m->loss_scale = num(&j, "loss_scale");
		m->ema_decay = num(&j, "ema_decay");
		m->images_per_s = num(&j, "images_per_s");
		m->batch = isnan(num(&j, "batch")) ? 0 : (int64_t)num(&j, "batch");
		m->fid = num(&j, "fid");
		m->kid = num(&j, "kid");
		if (isnan(m->loss_mean))
			m->loss_mean = m->loss;
	}
	rt_json_free(&j);
	return ok ? 0 : -1;
}

/* The kept lines of an existing file (none when it is absent). */
static int read_old(cli_metrics *mt, int64_t upto)
{
	FILE *f = fopen(mt->path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	cli_metric m;
	int rc = 0;
	while ((len = getline(&line, &cap, f)) > 0 && parse_line(line, (size_t)len, &m) == 0)
		if (m.step <= upto && push(mt, &m)) {
			rc = -1;
			break;
		}
	free(line);
	fclose(f);
	return rc;
}

/* JSON has no NaN or infinity: those become null. */
static void put_num(FILE *f, const char *key, double v, const char *sep)
{
	if (isfinite(v))
		fprintf(f, "\"%s\": %.9g%s", key, v, sep);
	else
		fprintf(f, "\"%s\": null%s", key, sep);
}

static int write_line(FILE *f, const cli_metric *m)
{
	fprintf(f, "{\"step\": %lld, ", (long long)m->step);
	put_num(f, "loss", m->loss, ", ");
	put_num(f, "loss_mean", m->loss_mean, ", ");
	put_num(f, "lr", m->lr, ", ");
	put_num(f, "loss_scale", m->loss_scale, ", ");
	if (!isnan(m->ema_decay))
		put_num(f, "ema_decay", m->ema_decay, ", ");
	fprintf(f, "\"batch\": %lld, ", (long long)m->batch);
	if (isfinite(m->fid) || isfinite(m->kid)) {
		put_num(f, "images_per_s", m->images_per_s, ", ");
		put_num(f, "fid", m->fid, ", ");
		put_num(f, "kid", m->kid, "}\n");
	} else {
		put_num(f, "images_per_s", m->images_per_s, "}\n");
	}
	return fflush(f) ? -1 : ferror(f) ? -1 : 0;
}

/* The kept lines go to a temporary file renamed over the old one, so a
 * kill at any moment leaves the old lines or the new ones. */
int cli_metrics_open(cli_metrics *mt, const cli_opts *o, const char *dir, int resume,
                     int64_t upto)
{
	char tmp[4200];
	memset(mt, 0, sizeof *mt);
	snprintf(mt->path, sizeof mt->path, "%s/metrics.jsonl", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", mt->path, (long)getpid());
	errno = 0;
	if (resume && read_old(mt, upto))
		return cli_fail(o, "%s: %s", mt->path, strerror(errno ? errno : ENOMEM));
	if (!(mt->f = fopen(tmp, "w")))
		return cli_fail(o, "cannot create %s: %s", tmp, strerror(errno));
	for (int64_t i = 0; i < mt->n; i++)
		if (write_line(mt->f, &mt->m[i])) {
			remove(tmp);
			return cli_fail(o, "%s: write failed: %s", tmp, strerror(errno));
		}
	if (rename(tmp, mt->path)) {
		remove(tmp);
		return cli_fail(o, "cannot rename %s over %s: %s", tmp, mt->path, strerror(errno));
	}
	return 0;
}

int cli_metrics_add(cli_metrics *mt, const cli_opts *o, const cli_metric *m)
{
	if (push(mt, m))
		return cli_fail(o, "out of memory");
	if (mt->f && write_line(mt->f, m))
		return cli_fail(o, "%s: write failed: %s", mt->path, strerror(errno));
	return 0;
}

void cli_metrics_close(cli_metrics *mt)
{
	if (mt->f)
		fclose(mt->f);
	free(mt->m);
	memset(mt, 0, sizeof *mt);
}

/* hyper.c: train's flags for the run-time hyperparameters of the compiled
 * train_step (lua/ddpm/optim.lua). Each hyperparameter is a scalar state
 * tensor hp.NAME (f32) that the step reads; its initialiser is the script's
 * value, which the program's meta "optimizer" also records (for `info`).
 * The host only stores numbers: a flag's value, or for a choice its code
 * (the index of its name below, as optim.lua's CODES numbers them). Every
 * formula that uses them is in the graph.
 *
 * Order of precedence: a flag, else the checkpoint's hp.NAME (--resume),
 * else the script's value. hp.total_steps, when still 0 under a decaying
 * schedule, becomes the optimizer step this run ends at. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmdline.h"

typedef struct {
	const char *flag, *name;        /* --lr sets hp.lr */
	const char *const *choices;     /* the names of codes 0, 1, ...; NULL: a number */
	double lo, hi;                  /* a number's accepted range */
	int integer;
	const char *arg, *meaning;      /* for train --help */
} hyper;

static const char *const schedules[] = { "constant", "linear", "cosine", NULL };
static const char *const ema_warmups[] = { "none", "power", "ratio", NULL };

static const hyper hypers[] = {
	{ "--lr", "lr", NULL, 0, 1e3, 0,
	  "X", "the peak learning rate" },
	{ "--warmup", "warmup", NULL, 0, 1e9, 1,
	  "N", "linear warmup over the first N optimizer steps" },
	{ "--lr-schedule", "lr_schedule", schedules, 0, 0, 0,
	  "constant|linear|cosine", "the decay after the warmup" },
	{ "--total-steps", "total_steps", NULL, 0, 1e9, 1,
	  "N", "the step where linear and cosine reach 0 (0: the run's last step)" },
	{ "--clip", "clip", NULL, 0, 1e9, 0,
	  "X", "global-norm gradient clipping (0: off)" },
	{ "--weight-decay", "weight_decay", NULL, 0, 1e3, 0,
	  "X", "Adam's L2 term, or AdamW's decoupled decay" },
	{ "--grad-accum", "grad_accum", NULL, 1, 1e6, 1,
	  "N", "optimizer steps on the mean gradient of N train_step calls" },
	{ "--ema", "ema", NULL, 0, 1, 0,
	  "DECAY", "the EMA decay (its maximum under an EMA warmup)" },
	{ "--ema-warmup", "ema_warmup", ema_warmups, 0, 0, 0,
	  "none|power|ratio", "the EMA decay's warmup (diffusers' power, ratio)" },
	{ "--ema-inv-gamma", "ema_inv_gamma", NULL, 1e-9, 1e9, 0,
	  "X", "the EMA warmup's inverse gamma" },
	{ "--ema-power", "ema_power", NULL, 0, 1e3, 0,
	  "X", "the EMA warmup's power" },
	{ "--ema-min-decay", "ema_min_decay", NULL, 0, 1, 0,
	  "X", "the lowest EMA decay" },
};

#define NHYPER ((int)(sizeof hypers / sizeof *hypers))
_Static_assert(NHYPER <= (int)CLI_MAX_HYPER, "cli_opts.hyper holds every hyperparameter");

int cli_hyper_find(const char *arg, size_t len)
{
	for (int h = 0; h < NHYPER; h++)
		if (strlen(hypers[h].flag) == len && strncmp(hypers[h].flag, arg, len) == 0)
			return h;
	return -1;
}

/* The code of choice v (its index), or -1. */
static int choice_code(const hyper *h, const char *v)
{
	for (int c = 0; h->choices[c]; c++)
		if (strcmp(h->choices[c], v) == 0)
			return c;
	return -1;
}

static int nchoices(const hyper *h)
{
	int n = 0;
	while (h->choices[n])
		n++;
	return n;
}

int cli_hyper_parse(cli_opts *o, int h, const char *v)
{
	const hyper *y = &hypers[h];
	double x;
	if (y->choices) {
		int c = choice_code(y, v);
		rt_strbuf names = { 0 };
		for (int k = 0; c < 0 && y->choices[k]; k++)
			rt_sb_printf(&names, "%s%s", k ? ", " : "", y->choices[k]);
		if (c < 0) {
			cli_fail(o, "%s: expected one of %s, got '%s'", y->flag, names.p ? names.p : "", v);
			rt_sb_free(&names);
			return 1;
		}
		x = c;
	} else if (cli_number(o, y->flag, v, y->lo, y->hi, y->integer, &x)) {
		return 1;
	}
	o->hyper[h] = x;
	o->has_hyper |= 1u << h;
	return 0;
}

static rt_tensor *hp_tensor(const rt_tensorset *state, const hyper *y)
{
	char name[64];
	snprintf(name, sizeof name, "hp.%s", y->name);
	return rt_set_find(state, name);
}

/* The optimizer step this run ends at: o->steps train_step calls make one
 * step every grad_accum calls, counting the calls already accumulated. */
static double last_step(const cli_opts *o, const rt_tensorset *state)
{
	double n = cli_scalar(state, "hp.grad_accum"), step = cli_scalar(state, "optim.step");
	double pending = cli_scalar(state, "optim.accum");
	n = isnan(n) || n < 1 ? 1 : n;
	pending = isnan(pending) ? 0 : pending;
	return (isnan(step) ? 0 : step) + floor((pending + (double)o->steps) / n);
}

int cli_hyper_apply(const cli_opts *o, rt_tensorset *state)
{
	for (int h = 0; h < NHYPER; h++) {
		if (!(o->has_hyper & 1u << h))
			continue;
		rt_tensor *t = hp_tensor(state, &hypers[h]);
		if (!t)
			return cli_fail(o, "%s: this program has no hp.%s to set (%s)", hypers[h].flag,
			                hypers[h].name,
			                strncmp(hypers[h].name, "ema", 3) == 0
			                    ? "its optimizer keeps no EMA weights: set optimizer.ema and recompile"
			                    : "it was compiled before run-time hyperparameters: recompile");
		cli_set_scalar(state, t->name, o->hyper[h]);
	}
	double total = cli_scalar(state, "hp.total_steps"), kind = cli_scalar(state, "hp.lr_schedule");
	if (total <= 0 && kind > 0)
		cli_set_scalar(state, "hp.total_steps", last_step(o, state));
	return 0;
}

/* The value of y as text: a choice's name, else the number. */
static void put_value(rt_strbuf *b, const hyper *y, double v, int json)
{
	int c = (int)v;
	if (y->choices && c >= 0 && c < nchoices(y) && c == v)
		json ? rt_sb_json_string(b, y->choices[c]) : rt_sb_puts(b, y->choices[c]);
	else
		rt_sb_printf(b, "%.7g", v);
}

void cli_hyper_describe(const rt_tensorset *state, rt_strbuf *b, int json)
{
	int n = 0;
	rt_sb_puts(b, json ? "{" : "");
	for (int h = 0; h < NHYPER; h++) {
		const rt_tensor *t = hp_tensor(state, &hypers[h]);
		if (!t)
			continue;
		rt_sb_puts(b, n++ ? ", " : "");
		if (json)
			rt_sb_json_string(b, hypers[h].name);
		rt_sb_printf(b, json ? ": " : "%s ", json ? "" : hypers[h].name);
		put_value(b, &hypers[h], rt_load(t->dtype, t->data, 0), json);
	}
	rt_sb_puts(b, json ? "}" : "");
}

void cli_hyper_info(const rt_program *p)
{
	const rt_json *opt = rt_json_get(p->meta, "optimizer");
	if (!opt || opt->type != RT_JOBJ)
		return;
	printf("hyperparameters (the script's values; train flags override them):\n");
	for (int h = 0; h < NHYPER; h++) {
		const rt_json *v = rt_json_get(opt, hypers[h].name);
		if (v && v->type == RT_JSTR)
			printf("  %-16s %s\n", hypers[h].flag, v->str);
		else if (v && v->type == RT_JNUM)
			printf("  %-16s %.7g\n", hypers[h].flag, v->num);
	}
}

void cli_hyper_help(void)
{
	for (int h = 0; h < NHYPER; h++)
		rt_help_line(hypers[h].flag, hypers[h].arg, hypers[h].meaning, "(the script's; see info)");
}

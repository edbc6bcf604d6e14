/* progress.c: the one-line progress bar of `train` and `sample` on a
 * terminal (cli.h). The line is redrawn with "\r" and cleared to its end
 * ("\033[K"), so a shorter line leaves no trail; the bar's width follows
 * the terminal's (TIOCGWINSZ), 80 columns when unknown. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "exec.h"

enum { BAR_MIN = 10, BAR_MAX = 30 };

static int columns(void)
{
	struct winsize ws;
	return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

const char *cli_duration(double secs, char *buf, size_t len)
{
	long s = secs > 0 && secs < 1e9 ? (long)(secs + 0.5) : 0;
	if (s >= 3600)
		snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lds", s);
	return buf;
}

void cli_progress_start(cli_progress *pg, const char *label, int64_t total)
{
	memset(pg, 0, sizeof *pg);
	pg->tty = isatty(STDOUT_FILENO);
	pg->label = label;
	pg->total = total > 0 ? total : 1;
	pg->t0 = rt_seconds();
	pg->last = -1;
}

void cli_progress_update(cli_progress *pg, int64_t done, const char *extra, int force)
{
	double now = rt_seconds();
	if (!pg->tty || (!force && pg->last >= 0 && now - pg->last < 0.1 && done < pg->total))
		return;
	pg->last = now;
	char head[96], tail[256], eta[32], bar[BAR_MAX + 1];
	snprintf(head, sizeof head, "%s %lld/%lld ", pg->label, (long long)done,
	         (long long)pg->total);
	double left = done > 0 ? (now - pg->t0) / (double)done * (double)(pg->total - done) : 0;
	snprintf(tail, sizeof tail, " %s%sETA %s", extra ? extra : "", extra ? " | " : "",
	         done > 0 ? cli_duration(left, eta, sizeof eta) : "?");
	int width = columns() - (int)strlen(head) - (int)strlen(tail) - 3;
	width = width > BAR_MAX ? BAR_MAX : width;
	if (width >= BAR_MIN) {
		int fill = (int)((double)width * (double)done / (double)pg->total);
		fill = fill < 0 ? 0 : fill > width ? width : fill;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(width - fill));
		bar[width] = 0;
		printf("\r%s[%s]%s\033[K", head, bar, tail);
	} else {
		printf("\r%s%s\033[K", head, tail);
	}
	fflush(stdout);
	pg->shown = 1;
}

void cli_progress_clear(cli_progress *pg)
{
	if (!pg->tty || !pg->shown)
		return;
	printf("\r\033[K");
	fflush(stdout);
	pg->shown = 0;
	pg->last = -1;
}

void cli_progress_end(cli_progress *pg)
{
	if (!pg->tty || !pg->shown)
		return;
	putchar('\n');
	fflush(stdout);
	pg->shown = 0;
}

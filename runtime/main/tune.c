/* tune: `OUT tune [--device DEV] [--seed S] [--seconds S]`. Times every
 * variant of the program's OpenCL kernels on the device (device.h,
 * rt_device_tune) from weights initialised from the seed, within the time
 * limit; the choice lands in the cache folder, where every later open of
 * the same program on the same device and driver finds it. */
#include <stdio.h>

#include "cli.h"

int cli_tune(const cli_opts *o, const rt_program *p)
{
	char err[1024];
	rt_tensorset state = { 0 };
	if (rt_state_init(p, (uint64_t)o->seed, NULL, NULL, &state, err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	rt_device *d = cli_device(o, p);
	int rc = 1;
	if (d) {
		printf("tuning %s on %s\n", p->model, rt_device_name(d));
		fflush(stdout);
		double seconds = o->has_seconds ? o->seconds : -1;
		rc = rt_device_tune(d, &state, seconds, stdout, err, sizeof err) != RT_OK ? cli_fail(o, "%s", err) : 0;
	}
	rt_device_free(d);
	rt_set_free(&state);
	return rc;
}

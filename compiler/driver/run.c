/* run: executes one entry of a model on inputs from a safetensors file. */
#include <stdio.h>

#include "driver.h"

int drv_run(const drv_args *a)
{
	fprintf(stderr, "ddpmc run: not yet\n");
	return -1;
}

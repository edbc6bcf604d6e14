/* cl_cache.c: the on-disk cache of OpenCL program binaries (device_impl.h).
 * A file is "DDPMCCL1", the 16-byte key, the binary's length (8 bytes,
 * little-endian) and the binary; anything else is treated as absent, and
 * a binary the driver then rejects is rebuilt from source by cl.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmdline.h"
#include "device_impl.h"

#define MAGIC "DDPMCCL1"
#define HEADER (8 + 16 + 8)
#define MAX_BINARY ((size_t)1 << 31)

/* Two FNV-1a hashes from different offsets: a 128-bit key. */
void rt_cl_key_init(rt_cl_key *k)
{
	k->h[0] = UINT64_C(0xcbf29ce484222325);
	k->h[1] = UINT64_C(0x84222325cbf29ce4);
}

static void fnv(rt_cl_key *k, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		k->h[0] = (k->h[0] ^ b[i]) * UINT64_C(0x100000001b3);
		k->h[1] = (k->h[1] ^ b[i]) * UINT64_C(0x100000001b3);
	}
}

void rt_cl_key_add(rt_cl_key *k, const void *bytes, size_t len)
{
	uint64_t n = len;
	fnv(k, (const unsigned char *)&n, sizeof n);
	fnv(k, bytes, len);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void header(const rt_cl_key *k, size_t len, unsigned char *h)
{
	memcpy(h, MAGIC, 8);
	put64(h + 8, k->h[0]);
	put64(h + 16, k->h[1]);
	put64(h + 24, len);
}

int rt_cl_cache_path(const rt_cl_key *k, const char *ext, char *path, size_t len)
{
	char dir[4096];
	if (!rt_cache_dir("DDPMC_CL_CACHE", dir, sizeof dir))
		return 0;
	int n = snprintf(path, len, "%s/cl-%016llx%016llx%s", dir, (unsigned long long)k->h[0],
	                 (unsigned long long)k->h[1], ext);
	return n > 0 && (size_t)n < len;
}

unsigned char *rt_cl_cache_load(const rt_cl_key *k, size_t *len)
{
	char path[4200];
	unsigned char h[HEADER], want[HEADER], *bin = NULL;
	if (!rt_cl_cache_path(k, ".bin", path, sizeof path))
		return NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	header(k, 0, want);
	if (fread(h, 1, HEADER, f) == HEADER && memcmp(h, want, 24) == 0) {
		uint64_t n = get64(h + 24);
		if (n > 0 && n < MAX_BINARY && (bin = malloc((size_t)n))) {
			if (fread(bin, 1, (size_t)n, f) != n || fgetc(f) != EOF) {
				free(bin);
				bin = NULL;
			}
			*len = (size_t)n;
		}
	}
	fclose(f);
	return bin;
}

/* head then body into path, through a temporary file and a rename; 0 or -1. */
static int write_atomically(char *path, const void *head, size_t hlen, const void *body, size_t blen)
{
	char tmp[4300];
	if (rt_make_parents(path))
		return -1;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return -1;
	int ok = fwrite(head, 1, hlen, f) == hlen && fwrite(body, 1, blen, f) == blen;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (ok && rename(tmp, path) == 0)
		return 0;
	remove(tmp);
	return -1;
}

void rt_cl_cache_store(const rt_cl_key *k, const unsigned char *bin, size_t len)
{
	char path[4200];
	unsigned char h[HEADER];
	if (!bin || !len || !rt_cl_cache_path(k, ".bin", path, sizeof path))
		return;
	header(k, len, h);
	write_atomically(path, h, HEADER, bin, len);
}

int rt_cl_cache_put(const rt_cl_key *k, const char *ext, const char *text, size_t len, char *path,
                    size_t pathlen)
{
	if (!rt_cl_cache_path(k, ext, path, pathlen))
		return -1;
	return write_atomically(path, "", 0, text, len);
}

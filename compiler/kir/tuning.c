/* tuning: the tuner's results, kept in a text file between compiles.
 *
 * A result says which register tile was fastest for one kernel signature
 * (kir_kernel_signature), or which algorithm for one convolution
 * (kir_conv_signature), on one machine (a backend's key: the host CPU and
 * the CPU the code is for). A file may hold many machines' results; a
 * set loaded for one machine answers for that machine only, and saving
 * writes back every result it read. The file is checked line by line and
 * refused whole when anything is wrong: a result is a schedule that the
 * compiled code will follow, so none is trusted from a damaged file (the
 * backend checks each tile it is given again).
 *
 * Format (kir.h): the header line "ddpmc-tuning 1", then
 *   MACHINE \t SIGNATURE \t VAR0 COPIES0 VAR1 COPIES1 \t GFLOPS
 *   MACHINE \t SIGNATURE \t direct|winograd|winograd4x4 \t GFLOPS */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kir.h"

#define TUNING_HEADER "ddpmc-tuning 1"

enum { MACHINE_MAX = 200, LINE_MAX_BYTES = 512 };

/* A result: a tile (algorithm NO_ALGORITHM) or an algorithm (its
 * GFLOP/s in tile.gflops). */
enum { NO_ALGORITHM = -1 };
static const char *const algorithm_names[KIR_ALGOS] = { [KIR_ALGO_DIRECT] = "direct",
	                                                [KIR_ALGO_WINOGRAD2X2] = "winograd",
	                                                [KIR_ALGO_WINOGRAD4X4] = "winograd4x4" };

typedef struct {
	char machine[MACHINE_MAX];
	uint64_t sig;
	int algorithm;
	kir_tile tile;
} result;

struct kir_tuning {
	char machine[MACHINE_MAX];
	result *r;
	int n, cap;
};

kir_tuning *kir_tuning_new(const char *machine)
{
	kir_tuning *db = calloc(1, sizeof *db);
	snprintf(db->machine, sizeof db->machine, "%s", machine);
	return db;
}

void kir_tuning_free(kir_tuning *db)
{
	if (db)
		free(db->r);
	free(db);
}

/* The result of sig on machine, a tile's or an algorithm's. */
static result *find(const kir_tuning *db, const char *machine, uint64_t sig, int is_algorithm)
{
	for (int i = 0; i < db->n; i++)
		if (db->r[i].sig == sig && (db->r[i].algorithm != NO_ALGORITHM) == is_algorithm &&
		    !strcmp(db->r[i].machine, machine))
			return &db->r[i];
	return NULL;
}

static void put(kir_tuning *db, const char *machine, uint64_t sig, int algorithm, const kir_tile *t)
{
	result *r = find(db, machine, sig, algorithm != NO_ALGORITHM);
	if (!r) {
		if (db->n == db->cap) {
			db->cap = db->cap ? 2 * db->cap : 64;
			db->r = realloc(db->r, (size_t)db->cap * sizeof *db->r);
		}
		r = &db->r[db->n++];
		snprintf(r->machine, sizeof r->machine, "%s", machine);
		r->sig = sig;
	}
	r->algorithm = algorithm;
	r->tile = *t;
	r->tile.source = KIR_TILE_TUNED;
}

int kir_tuning_find(const kir_tuning *db, uint64_t sig, kir_tile *t)
{
	const result *r = find(db, db->machine, sig, 0);
	if (r)
		*t = r->tile;
	return r != NULL;
}

void kir_tuning_put(kir_tuning *db, uint64_t sig, const kir_tile *t)
{
	put(db, db->machine, sig, NO_ALGORITHM, t);
}

int kir_tuning_find_algorithm(const kir_tuning *db, uint64_t sig, kir_algorithm *a)
{
	const result *r = find(db, db->machine, sig, 1);
	if (r)
		*a = (kir_algorithm)r->algorithm;
	return r != NULL;
}

void kir_tuning_put_algorithm(kir_tuning *db, uint64_t sig, kir_algorithm a, double gflops)
{
	kir_tile t = { .gflops = gflops };
	put(db, db->machine, sig, (int)a, &t);
}

/* The algorithm named s, or NO_ALGORITHM. */
static int algorithm_named(const char *s)
{
	for (int a = 0; a < (int)(sizeof algorithm_names / sizeof *algorithm_names); a++)
		if (!strcmp(s, algorithm_names[a]))
			return a;
	return NO_ALGORITHM;
}

/* "VAR0 COPIES0 VAR1 COPIES1" into t: 0, or -1 unless four integers in range. */
static int parse_tile(const char *s, kir_tile *t)
{
	int used = 0;
	if (sscanf(s, "%d %d %d %d%n", &t->var[0], &t->copies[0], &t->var[1], &t->copies[1],
	           &used) != 4 || s[used])
		return -1;
	for (int d = 0; d < 2; d++)
		if (t->var[d] < -1 || t->var[d] >= KIR_MAXVAR || t->copies[d] < 1 || t->copies[d] > 1024)
			return -1;
	return t->copies[0] * t->copies[1] > 1024 ? -1 : 0;
}

/* One result line (its newline removed) into db; 0, or -1 with what is
 * wrong in why. */
static int parse_line(kir_tuning *db, char *line, const char **why)
{
	char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
	char *tab3 = tab2 ? strchr(tab2 + 1, '\t') : NULL;
	if (!tab3 || strchr(tab3 + 1, '\t')) {
		*why = "expected 4 fields separated by tabs";
		return -1;
	}
	*tab1 = *tab2 = *tab3 = '\0';
	if (tab1 == line || tab1 - line >= MACHINE_MAX) {
		*why = "the machine name is empty or too long";
		return -1;
	}
	char *end;
	errno = 0;
	uint64_t sig = strtoull(tab1 + 1, &end, 16);
	if (end - (tab1 + 1) != 16 || *end || errno) {
		*why = "the signature is not 16 hex digits";
		return -1;
	}
	kir_tile t = { KIR_TILE_TUNED, { 0, 0 }, { 0, 0 }, 0 };
	int algorithm = algorithm_named(tab2 + 1);
	if (algorithm == NO_ALGORITHM && parse_tile(tab2 + 1, &t) < 0) {
		*why = "the tile is not four integers VAR0 COPIES0 VAR1 COPIES1 in range, nor an "
		       "algorithm (direct, winograd or winograd4x4)";
		return -1;
	}
	t.gflops = strtod(tab3 + 1, &end);
	if (end == tab3 + 1 || *end || !(t.gflops >= 0 && t.gflops < 1e9)) {
		*why = "the GFLOP/s is not a number";
		return -1;
	}
	put(db, line, sig, algorithm, &t);
	return 0;
}

static kir_tuning *refuse(kir_tuning *db, FILE *f, char *err, size_t errlen, const char *path,
                          int line, const char *why)
{
	snprintf(err, errlen, "%s:%d: %s", path, line, why);
	fclose(f);
	kir_tuning_free(db);
	return NULL;
}

kir_tuning *kir_tuning_load(const char *path, const char *machine, char *err, size_t errlen)
{
	kir_tuning *db = kir_tuning_new(machine);
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return db;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		kir_tuning_free(db);
		return NULL;
	}
	char line[LINE_MAX_BYTES];
	for (int no = 1; fgets(line, sizeof line, f); no++) {
		size_t len = strlen(line);
		if (!len || line[len - 1] != '\n')
			return refuse(db, f, err, errlen, path, no, "line too long or not ended");
		line[len - 1] = '\0';
		const char *why = NULL;
		if (no == 1 ? strcmp(line, TUNING_HEADER) != 0 : parse_line(db, line, &why) < 0)
			return refuse(db, f, err, errlen, path, no,
			              why ? why : "not a ddpmc tuning file (no \"" TUNING_HEADER "\" line)");
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: read error", path);
		kir_tuning_free(db);
		return NULL;
	}
	return db;
}

int kir_tuning_save(const kir_tuning *db, const char *path, char *err, size_t errlen)
{
	rt_strbuf b = { 0 };
	rt_sb_printf(&b, "%s\n", TUNING_HEADER);
	for (int i = 0; i < db->n; i++) {
		const result *r = &db->r[i];
		rt_sb_printf(&b, "%s\t%016" PRIx64 "\t", r->machine, r->sig);
		if (r->algorithm == NO_ALGORITHM)
			rt_sb_printf(&b, "%d %d %d %d", r->tile.var[0], r->tile.copies[0], r->tile.var[1],
			             r->tile.copies[1]);
		else
			rt_sb_printf(&b, "%s", algorithm_names[r->algorithm]);
		rt_sb_printf(&b, "\t%.1f\n", r->tile.gflops);
	}
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	int e = b.oom ? ENOMEM : rt_write_file(tmp, b.p, b.len, 0);
	if (!e && rename(tmp, path) != 0) {
		e = errno;
		remove(tmp);
	}
	rt_sb_free(&b);
	if (e)
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
	return e ? -1 : 0;
}

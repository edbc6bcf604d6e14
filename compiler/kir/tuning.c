/* tuning: the tuner's results, kept in a text file between compiles.
 *
 * A result says which register tile was fastest for one kernel signature
 * (kir_kernel_signature) on one machine (a backend's key: the host CPU and
 * the CPU the code is for). A file may hold many machines' results; a
 * set loaded for one machine answers for that machine only, and saving
 * writes back every result it read. The file is checked line by line and
 * refused whole when anything is wrong: a result is a schedule that the
 * compiled code will follow, so none is trusted from a damaged file (the
 * backend checks each tile it is given again).
 *
 * Format (kir.h): the header line "ddpmc-tuning 1", then
 *   MACHINE \t SIGNATURE \t VAR0 COPIES0 VAR1 COPIES1 \t GFLOPS */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kir.h"

#define TUNING_HEADER "ddpmc-tuning 1"

enum { MACHINE_MAX = 200, LINE_MAX_BYTES = 512 };

typedef struct {
	char machine[MACHINE_MAX];
	uint64_t sig;
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

static result *find(const kir_tuning *db, const char *machine, uint64_t sig)
{
	for (int i = 0; i < db->n; i++)
		if (db->r[i].sig == sig && !strcmp(db->r[i].machine, machine))
			return &db->r[i];
	return NULL;
}

static void put(kir_tuning *db, const char *machine, uint64_t sig, const kir_tile *t)
{
	result *r = find(db, machine, sig);
	if (!r) {
		if (db->n == db->cap) {
			db->cap = db->cap ? 2 * db->cap : 64;
			db->r = realloc(db->r, (size_t)db->cap * sizeof *db->r);
		}
		r = &db->r[db->n++];
		snprintf(r->machine, sizeof r->machine, "%s", machine);
		r->sig = sig;
	}
	r->tile = *t;
	r->tile.source = KIR_TILE_TUNED;
}

int kir_tuning_find(const kir_tuning *db, uint64_t sig, kir_tile *t)
{
	const result *r = find(db, db->machine, sig);
	if (r)
		*t = r->tile;
	return r != NULL;
}

void kir_tuning_put(kir_tuning *db, uint64_t sig, const kir_tile *t)
{
	put(db, db->machine, sig, t);
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
	int used = 0;
	if (sscanf(tab2 + 1, "%d %d %d %d%n", &t.var[0], &t.copies[0], &t.var[1], &t.copies[1],
	           &used) != 4 || tab2[1 + used] || t.var[0] < -1 || t.var[1] < -1 ||
	    t.var[0] >= KIR_MAXVAR || t.var[1] >= KIR_MAXVAR || t.copies[0] < 1 ||
	    t.copies[1] < 1 || t.copies[0] * t.copies[1] > 1024) {
		*why = "the tile is not four integers VAR0 COPIES0 VAR1 COPIES1 in range";
		return -1;
	}
	t.gflops = strtod(tab3 + 1, &end);
	if (end == tab3 + 1 || *end || !(t.gflops >= 0 && t.gflops < 1e9)) {
		*why = "the GFLOP/s is not a number";
		return -1;
	}
	put(db, line, sig, &t);
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
		rt_sb_printf(&b, "%s\t%016" PRIx64 "\t%d %d %d %d\t%.1f\n", r->machine, r->sig,
		             r->tile.var[0], r->tile.copies[0], r->tile.var[1], r->tile.copies[1],
		             r->tile.gflops);
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

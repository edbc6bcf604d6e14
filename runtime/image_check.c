/* image_check.c: what stb_image trusts in a file, checked before it reads
 * the file (rt_image_check, data_impl.h).
 *
 * Debian 12's stb_image is 2.27, whose decoders believe some fields of a
 * damaged or hostile file: where that costs memory, overruns an array,
 * loops forever or returns uninitialised pixels, the file is walked here
 * the way stb_image walks it and refused with what is wrong. Each check
 * says which stb_image code it stands in front of; all were found by
 * tests/fuzz/fuzz_png or by reading stb_image 2.30 against 2.27 (2.30
 * still trusts a TGA's and a flat HDR's length, and a BMP's palette).
 * Not checked, since only decoding the JPEG shows them: a JPEG scan with
 * restart markers cut short or with junk before a restart (uninitialised
 * pixels), JPEG data that overflows 2.27's signed integers (garbage
 * pixels); nor GIF, PSD and PIC files.
 * Reads past the end of the file give 0, as stb_image's do. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_impl.h"

typedef struct {
	const uint8_t *p;
	size_t len, at;         /* at may pass len: what lies there reads 0 */
} reader;

static unsigned get8(reader *r)
{
	unsigned v = r->at < r->len ? r->p[r->at] : 0;
	r->at++;
	return v;
}

static unsigned get16(reader *r)
{
	unsigned hi = get8(r);
	return hi << 8 | get8(r);
}

static uint32_t get32(reader *r)
{
	uint32_t hi = get16(r);
	return hi << 16 | get16(r);
}

static unsigned get16le(reader *r)
{
	unsigned lo = get8(r);
	return lo | get8(r) << 8;
}

static uint32_t get32le(reader *r)
{
	uint32_t lo = get16le(r);
	return lo | (uint32_t)get16le(r) << 16;
}

static int at_end(const reader *r)
{
	return r->at >= r->len;
}

/* NULL when the file holds want bytes from r's position on, else "KIND:
 * its header promises ..." in buf: a decoder that does not check its
 * reads would return the rest uninitialised. */
static const char *promised(const reader *r, unsigned long long want, const char *kind, char *buf,
                            size_t len)
{
	size_t have = r->len > r->at ? r->len - r->at : 0;
	if (want <= have)
		return NULL;
	snprintf(buf, len, "truncated %s: its header promises %llu bytes of pixels, the file holds %zu",
	         kind, want, have);
	return buf;
}

/* --- PNG ------------------------------------------------------------------- */

/* A PNG chunk: its type and data within the file. */
typedef struct {
	const uint8_t *type, *data;
	size_t n;
} png_chunk;

/* The chunk at r's position: 1, and r moves past it; 0 at IEND (whose
 * length stb_image does not read) or at the end of the file; -1 when it
 * claims more data than the file holds. */
static int png_next(reader *r, png_chunk *c)
{
	if (r->at + 8 > r->len)
		return 0;
	size_t n = get32(r);
	c->type = r->p + r->at, c->data = c->type + 4, c->n = n;
	if (memcmp(c->type, "IEND", 4) == 0)
		return 0;
	if (n > r->len - r->at - 4)
		return -1;
	r->at += 4 + n + 4;
	return 1;
}

/* An IHDR as stb_image reads it. */
typedef struct {
	uint64_t w, h;
	unsigned depth, type, interlace, bits;  /* bits: a pixel's */
} png_header;

/* 0 where stb_image refuses the IHDR. */
static int png_header_read(const png_chunk *ihdr, png_header *h)
{
	static const unsigned channels[7] = { 1, 0, 3, 1, 2, 0, 4 };
	if (!ihdr->type || memcmp(ihdr->type, "IHDR", 4) != 0 || ihdr->n != 13)
		return 0;
	reader d = { ihdr->data, 13, 0 };
	h->w = get32(&d), h->h = get32(&d), h->depth = get8(&d), h->type = get8(&d);
	unsigned method = get8(&d), filter = get8(&d), k = h->depth;
	h->interlace = get8(&d);
	if (h->type > 6 || !channels[h->type] || (k != 1 && k != 2 && k != 4 && k != 8 && k != 16) ||
	    (h->type == 3 && k == 16) || method || filter || h->interlace > 1)
		return 0;
	if (!h->w || !h->h || h->w > 1 << 24 || h->h > 1 << 24 ||
	    (1 << 30) / h->w / (h->type == 3 ? 4 : channels[h->type]) < h->h)
		return 0;       /* no pixels, or too large for stb_image */
	h->bits = channels[h->type] * k;
	return 1;
}

/* The size of Adam7 pass p (0..6) in pixels, or without interlace of the
 * image (pass 0; the others empty). */
static void png_pass(const png_header *h, int p, uint64_t *pw, uint64_t *ph)
{
	static const unsigned x0[7] = { 0, 4, 0, 2, 0, 1, 0 }, y0[7] = { 0, 0, 4, 0, 2, 0, 1 };
	static const unsigned dx[7] = { 8, 8, 4, 4, 2, 2, 1 }, dy[7] = { 8, 8, 8, 4, 4, 2, 2 };
	if (!h->interlace) {
		*pw = p ? 0 : h->w, *ph = p ? 0 : h->h;
		return;
	}
	*pw = h->w > x0[p] ? (h->w - x0[p] + dx[p] - 1) / dx[p] : 0;
	*ph = h->h > y0[p] ? (h->h - y0[p] + dy[p] - 1) / dy[p] : 0;
}

/* The bytes of a row of pw pixels: a filter byte and the packed samples. */
static uint64_t png_row_bytes(const png_header *h, uint64_t pw)
{
	return (pw * h->bits + 7) / 8 + 1;
}

/* The bytes the image data inflates to, as stbi__create_png_image reads
 * them: every row of every pass. */
static uint64_t png_raw_bytes(const png_header *h)
{
	uint64_t sum = 0, pw, ph;
	for (int p = 0; p < 7; p++) {
		png_pass(h, p, &pw, &ph);
		if (pw && ph)
			sum += ph * png_row_bytes(h, pw);
	}
	return sum;
}

/* The colour indices of a palette image, read from its data as it
 * inflates, each row unfiltered as stbi__create_png_image_raw does (a
 * filter unit of one byte): stb_image 2.27 takes a colour past the
 * palette from an uninitialised array. */
typedef struct {
	const png_header *h;
	unsigned colours;       /* the last PLTE's */
	int pass;               /* 7: done */
	uint64_t pw, ph, y;     /* the pass's size in pixels, the row being filled */
	size_t row_bytes, filled;
	uint8_t *row, *prev;    /* this row and the one above, unfiltered */
	long past;              /* the first index past the palette, or -1 */
} png_palette;

/* From pass p on, the first that has pixels; 7 when none is left. */
static void palette_pass(png_palette *pl, int p)
{
	for (pl->pass = p; pl->pass < 7; pl->pass++) {
		png_pass(pl->h, pl->pass, &pl->pw, &pl->ph);
		if (pl->pw && pl->ph)
			break;
	}
	if (pl->pass < 7) {
		pl->row_bytes = (size_t)png_row_bytes(pl->h, pl->pw);
		memset(pl->prev, 0, pl->row_bytes);
		pl->y = 0, pl->filled = 0;
	}
}

static int paeth(int a, int b, int c)
{
	int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* The filled row: unfiltered, its indices checked; then the next. */
static void palette_row(png_palette *pl)
{
	uint8_t *x = pl->row, *up = pl->prev;
	unsigned filter = x[0], depth = pl->h->depth;
	if (filter > 4) {
		pl->pass = 7;   /* stb_image refuses it */
		return;
	}
	for (size_t i = 1; i < pl->row_bytes; i++) {
		int a = i > 1 ? x[i - 1] : 0, b = up[i], c = i > 1 ? up[i - 1] : 0;
		x[i] += filter == 1 ? a : filter == 2 ? b : filter == 3 ? (a + b) / 2
		      : filter == 4 ? paeth(a, b, c) : 0;
	}
	for (uint64_t px = 0; px < pl->pw && pl->past < 0; px++) {
		uint64_t bit = px * depth;
		unsigned index = x[1 + bit / 8] >> (8 - depth - bit % 8) & ((1u << depth) - 1);
		if (index >= pl->colours)
			pl->past = (long)index;
	}
	pl->row = up, pl->prev = x;
	pl->filled = 0;
	if (++pl->y == pl->ph)
		palette_pass(pl, pl->pass + 1);
}

static void palette_take(png_palette *pl, const uint8_t *p, size_t n)
{
	while (n > 0 && pl->pass < 7 && pl->past < 0) {
		size_t k = pl->row_bytes - pl->filled < n ? pl->row_bytes - pl->filled : n;
		memcpy(pl->row + pl->filled, p, k);
		pl->filled += k, p += k, n -= k;
		if (pl->filled == pl->row_bytes)
			palette_row(pl);
	}
}

/* The zlib stream of the IDAT chunks through zlib's inflate, its output
 * counted, handed to the palette check where there is one, and dropped. */
typedef struct {
	z_stream z;
	int status;             /* inflate's last; Z_DATA_ERROR sticks */
	uint64_t cap;           /* stop past this many bytes out */
	png_palette *palette;   /* or NULL */
} png_stream;

static void png_feed(png_stream *s, const png_chunk *c)
{
	uint8_t out[16384];
	s->z.next_in = (Bytef *)c->data;
	s->z.avail_in = (uInt)c->n;
	while (s->status == Z_OK && s->z.avail_in > 0 && s->z.total_out <= s->cap) {
		s->z.next_out = out;
		s->z.avail_out = sizeof out;
		s->status = inflate(&s->z, Z_NO_FLUSH);
		if (s->status == Z_BUF_ERROR)
			s->status = Z_OK;       /* only wants more input */
		if (s->palette)
			palette_take(s->palette, out, sizeof out - s->z.avail_out);
	}
}

/* NULL, or what is wrong with the PNG's chunks:
 * - one before IEND claims more data than the file holds: stb_image
 *   allocates what IDAT chunks claim before it reads them, so a few bytes
 *   could cost gigabytes;
 * - the image data is not a valid zlib stream (raw deflate when a CgBI
 *   chunk comes before IEND, as stb_image reads it): stb_image 2.27 takes
 *   deflate distance codes 30 and 31 as distance 0 and copies
 *   uninitialised bytes into the image, and ignores the Adler-32 check
 *   (libpng, and so PIL, refuse both; zlib also refuses a few malformed
 *   streams that stb_image reads);
 * - it inflates to more bytes than the IHDR's size holds: stb_image
 *   inflates all of it into memory first (a small file could cost
 *   gigabytes), and then refuses it or ignores the rest;
 * - a palette image's pixel is a colour past its palette (png_palette).
 * A stream cut short is left to stb_image: what it makes of one is
 * never uninitialised. */
static const char *png_check(reader *r, char *buf, size_t len)
{
	png_chunk c, ihdr = { NULL, NULL, 0 };
	png_header h;
	size_t start = r->at;
	unsigned colours = 0;
	int raw = 0, more;
	while ((more = png_next(r, &c)) > 0) {
		raw |= memcmp(c.type, "CgBI", 4) == 0;
		if (!ihdr.type && memcmp(c.type, "CgBI", 4) != 0)
			ihdr = c;
		if (memcmp(c.type, "PLTE", 4) == 0)
			colours = c.n <= 3 * 256 && c.n % 3 == 0 ? (unsigned)(c.n / 3) : 0;
	}
	if (more < 0)
		return "corrupt PNG: a chunk claims more bytes than the file holds";
	if (!png_header_read(&ihdr, &h))
		return NULL;    /* stb_image refuses it */
	png_stream s = { .status = Z_OK, .cap = png_raw_bytes(&h) };
	png_palette pl = { .h = &h, .colours = colours, .past = -1 };
	size_t widest = (size_t)png_row_bytes(&h, h.w);
	if (h.type == 3 && colours > 0 && colours < 1u << h.depth &&
	    (pl.row = malloc(widest)) && (pl.prev = malloc(widest))) {
		palette_pass(&pl, 0);
		s.palette = &pl;
	}
	if (s.cap && inflateInit2(&s.z, raw ? -15 : 15) == Z_OK) {
		for (r->at = start; png_next(r, &c) > 0;)
			if (memcmp(c.type, "IDAT", 4) == 0)
				png_feed(&s, &c);
		inflateEnd(&s.z);
	}
	free(pl.row);
	free(pl.prev);
	if (s.status == Z_DATA_ERROR)
		snprintf(buf, len, "corrupt PNG: its image data is not a valid zlib stream (zlib: %s)",
		         s.z.msg ? s.z.msg : "data error");
	else if (s.z.total_out > s.cap)
		snprintf(buf, len, "corrupt PNG: its image data inflates to more than the %llu bytes "
		         "its size holds", (unsigned long long)s.cap);
	else if (pl.past >= 0)
		snprintf(buf, len, "corrupt PNG: a pixel is colour %ld of a palette of %u", pl.past,
		         colours);
	else
		return NULL;
	return buf;
}

/* --- JPEG ------------------------------------------------------------------ */

/* A JPEG as stb_image's stbi__decode_jpeg_header and stbi__decode_jpeg_image
 * walk it: the segments before the frame header (bytes between them
 * skipped), then segments and scans, each scan's entropy-coded data ending
 * at the first marker that is not a restart (0xff 0x00 is a data byte).
 * Where stb_image refuses the file the walk stops: nothing further is
 * read. stb_image 2.27 does not check that
 * - a Huffman table (DHT) has at most 256 codes: it writes their lengths
 *   and symbols into arrays of 257 and 256 bytes;
 * - a scan's Huffman tables were defined: its decoder's tables are
 *   uninitialised memory, indexed with what they hold;
 * - the quantisation tables (DQT) were defined, and every component was
 *   decoded by a scan (in a progressive file, by a first DC scan): else
 *   the image is made of uninitialised memory. */
enum { NO_MARKER = -1, WALK_ON, WALK_STOP, WALK_REFUSE };

typedef struct {
	reader r;
	int marker;             /* the marker a scan's data ended at, or NO_MARKER */
	int defined[2][4];      /* the DC (0) and AC (1) tables a DHT defined */
	int quant[4];           /* the quantisation tables a DQT defined */
	int ncomp, ids[4], tq[4], decoded[4], progressive;
	const char *why;        /* with WALK_REFUSE */
} jpeg_walk;

#define NO_DQT "corrupt JPEG: a component uses a quantisation table that no DQT segment defines"

static int jpeg_refuse(jpeg_walk *w, const char *why)
{
	w->why = why;
	return WALK_REFUSE;
}

/* stbi__get_marker: the pending marker, or 0xff fill bytes and the byte
 * after them, or NO_MARKER when the next byte is not 0xff. */
static int next_marker(jpeg_walk *w)
{
	int m = w->marker;
	if (m != NO_MARKER) {
		w->marker = NO_MARKER;
		return m;
	}
	unsigned x = get8(&w->r);
	if (x != 0xff)
		return NO_MARKER;
	while (x == 0xff)
		x = get8(&w->r);
	return (int)x;
}

static int jpeg_dht(jpeg_walk *w)
{
	long left = (long)get16(&w->r) - 2;
	while (left > 0) {
		unsigned q = get8(&w->r), n = 0;
		if (q >> 4 > 1 || (q & 15) > 3)
			return WALK_STOP;
		for (int i = 0; i < 16; i++)
			n += get8(&w->r);
		if (n > 256)
			return jpeg_refuse(w, "corrupt JPEG: a Huffman table has more than 256 codes");
		w->defined[q >> 4][q & 15] = 1;
		w->r.at += n;
		left -= 17 + (long)n;
	}
	return left == 0 ? WALK_ON : WALK_STOP;
}

static int jpeg_dqt(jpeg_walk *w)
{
	long left = (long)get16(&w->r) - 2;
	while (left > 0) {
		unsigned q = get8(&w->r);
		if (q >> 4 > 1 || (q & 15) > 3)
			return WALK_STOP;
		w->quant[q & 15] = 1;
		w->r.at += q >> 4 ? 128 : 64;
		left -= q >> 4 ? 129 : 65;
	}
	return left == 0 ? WALK_ON : WALK_STOP;
}

/* stbi__process_marker: a table, a restart interval, an application
 * segment or a comment; anything else stops stb_image. */
static int jpeg_segment(jpeg_walk *w, int m)
{
	if (m == 0xc4)
		return jpeg_dht(w);
	if (m == 0xdb)
		return jpeg_dqt(w);
	if (m == 0xdd) {
		if (get16(&w->r) != 4)
			return WALK_STOP;
		w->r.at += 2;
		return WALK_ON;
	}
	if ((m >= 0xe0 && m <= 0xef) || m == 0xfe) {
		unsigned n = get16(&w->r);
		if (n < 2)
			return WALK_STOP;
		w->r.at += n - 2;
		return WALK_ON;
	}
	return WALK_STOP;
}

/* stbi__process_frame_header: the components' ids. */
static int jpeg_frame(jpeg_walk *w, int m)
{
	w->progressive = m == 0xc2;
	unsigned len = get16(&w->r);
	w->r.at += 5;           /* precision, height, width */
	unsigned n = get8(&w->r);
	if ((n != 1 && n != 3 && n != 4) || len != 8 + 3 * n)
		return WALK_STOP;
	w->ncomp = (int)n;
	for (unsigned i = 0; i < n; i++) {
		w->ids[i] = (int)get8(&w->r);
		w->r.at++;      /* sampling factors */
		if ((w->tq[i] = (int)get8(&w->r)) > 3)
			return WALK_STOP;
	}
	return WALK_ON;
}

/* 1 when a scan component with tables (dc, ac) finds the ones it decodes
 * with defined: a sequential scan uses both; a progressive one its DC
 * table for a first DC scan (ss 0, ah 0), its AC table for an AC scan. */
static int scan_tables_defined(const jpeg_walk *w, unsigned dc, unsigned ac, unsigned ss,
                               unsigned ah)
{
	int uses_dc = !w->progressive || (ss == 0 && ah == 0);
	int uses_ac = !w->progressive || ss > 0;
	return (!uses_dc || w->defined[0][dc]) && (!uses_ac || w->defined[1][ac]);
}

/* stbi__process_scan_header, then the entropy-coded data up to the
 * marker it ends at. */
static int jpeg_scan(jpeg_walk *w)
{
	unsigned len = get16(&w->r), n = get8(&w->r), tables[4];
	int comps[4];
	if (n < 1 || n > (unsigned)w->ncomp || len != 6 + 2 * n)
		return WALK_STOP;
	for (unsigned i = 0; i < n; i++) {
		int id = (int)get8(&w->r), c = 0;
		while (c < w->ncomp && w->ids[c] != id)
			c++;
		tables[i] = get8(&w->r);
		if (c == w->ncomp || tables[i] >> 4 > 3 || (tables[i] & 15) > 3)
			return WALK_STOP;
		comps[i] = c;
	}
	unsigned ss = get8(&w->r);
	w->r.at++;              /* the spectral selection's end */
	unsigned ah = get8(&w->r) >> 4;
	for (unsigned i = 0; i < n; i++)
		if (!scan_tables_defined(w, tables[i] >> 4, tables[i] & 15, ss, ah))
			return jpeg_refuse(w, "corrupt JPEG: a scan uses a Huffman table that no DHT "
			                      "segment defines");
	for (unsigned i = 0; i < n; i++) {
		if (!w->progressive && !w->quant[w->tq[comps[i]]])
			return jpeg_refuse(w, NO_DQT);
		w->decoded[comps[i]] |= !w->progressive || (ss == 0 && ah == 0);
	}
	while (!at_end(&w->r)) {
		if (get8(&w->r) != 0xff)
			continue;
		unsigned x = 0xff;
		while (x == 0xff && !at_end(&w->r))
			x = get8(&w->r);
		if (x != 0xff && x != 0 && !(x >= 0xd0 && x <= 0xd7)) {
			w->marker = (int)x;
			return WALK_ON;
		}
	}
	return WALK_STOP;
}

static int jpeg_walk_all(jpeg_walk *w)
{
	int m = next_marker(w), rc = WALK_ON;
	while (rc == WALK_ON && m != 0xc0 && m != 0xc1 && m != 0xc2) {
		rc = jpeg_segment(w, m);
		for (m = next_marker(w); m == NO_MARKER && !at_end(&w->r);)
			m = next_marker(w);
	}
	if (rc == WALK_ON)
		rc = jpeg_frame(w, m);
	while (rc == WALK_ON && (m = next_marker(w)) != 0xd9) {
		if (m == 0xda)
			rc = jpeg_scan(w);
		else if (m == 0xdc) {   /* DNL: its length, 4, then a height */
			rc = get16(&w->r) == 4 ? WALK_ON : WALK_STOP;
			w->r.at += 2;
		}
		else
			rc = jpeg_segment(w, m);
	}
	for (int c = 0; rc == WALK_ON && c < w->ncomp; c++)
		if (!w->decoded[c])
			rc = jpeg_refuse(w, "corrupt JPEG: a component of the image no scan decodes");
		else if (!w->quant[w->tq[c]])
			rc = jpeg_refuse(w, NO_DQT);
	return rc;
}

/* --- PNM ------------------------------------------------------------------- */

/* stbi__pnm_skip_whitespace: spaces and '#' comments. */
static void pnm_skip_space(reader *r)
{
	for (;;) {
		while (!at_end(r) && isspace(r->p[r->at]))
			r->at++;
		if (at_end(r) || r->p[r->at] != '#')
			return;
		while (!at_end(r) && r->p[r->at] != '\n' && r->p[r->at] != '\r')
			r->at++;
	}
}

/* stbi__pnm_getinteger, or -1 past 9 digits after any leading zeros:
 * stb_image reads the number into an int without an overflow check. */
static long long pnm_number(reader *r)
{
	long long v = 0;
	int digits = 0;
	for (; !at_end(r) && isdigit(r->p[r->at]); r->at++)
		if ((digits += v > 0 || r->p[r->at] != '0') <= 9)
			v = v * 10 + (r->p[r->at] - '0');
	return digits > 9 ? -1 : v;
}

/* A binary PNM (P5 grey, P6 RGB): NULL, or what is wrong with its header
 * numbers or the length of its pixels, which stb_image 2.27 does not
 * check. */
static const char *pnm_check(reader *r, char *buf, size_t len)
{
	long long n[3];
	r->at = 2;
	for (int i = 0; i < 3; i++) {
		pnm_skip_space(r);
		if ((n[i] = pnm_number(r)) < 0)
			return "corrupt PNM: a number in its header has more than 9 digits";
	}
	r->at++;                /* the byte after the maximum value */
	if (n[2] > 65535)
		return NULL;    /* stb_image refuses it */
	return promised(r, (unsigned long long)n[0] * (unsigned long long)n[1] *
	                   (r->p[1] == '6' ? 3 : 1) * (n[2] > 255 ? 2 : 1), "PNM", buf, len);
}

/* --- HDR ------------------------------------------------------------------- */

/* stbi__hdr_gettoken: one line (at most 1023 bytes kept) into buf. */
static const char *hdr_line(reader *r, char buf[1024])
{
	size_t n = 0;
	unsigned c = get8(r);
	while (!at_end(r) && c != '\n') {
		buf[n++] = (char)c;
		if (n == 1023) {
			while (!at_end(r) && get8(r) != '\n')
				;
			break;
		}
		c = get8(r);
	}
	buf[n] = 0;
	return buf;
}

/* A Radiance HDR file: NULL, or what is wrong with its pixels, which
 * stbi__hdr_load 2.27 reads as follows. Scanlines of 8 to 32767 pixels are
 * run-length coded, each after a header 2, 2, width: a count of 0, or data
 * that ends early (read as 0), loops forever. A scanline without that
 * header is the first of the image's remaining pixels stored flat, 4 bytes
 * each, as all are at other widths: reads of them are not checked, and
 * what is not there comes back uninitialised. */
static const char *hdr_check(reader *r, char *buf, size_t len)
{
	char line[1024];
	if (strcmp(hdr_line(r, line), "#?RADIANCE") != 0 && strcmp(line, "#?RGBE") != 0)
		return NULL;
	while (hdr_line(r, line)[0])
		;
	const char *size = hdr_line(r, line);
	if (strncmp(size, "-Y ", 3) != 0)
		return NULL;
	char *end;
	int height = (int)strtol(size + 3, &end, 10);   /* as stb_image converts them */
	while (*end == ' ')
		end++;
	if (strncmp(end, "+X ", 3) != 0)
		return NULL;
	int width = (int)strtol(end + 3, NULL, 10);
	if (width < 1 || height < 1)
		return NULL;    /* stb_image reads no pixels */
	unsigned long long pixels = (unsigned long long)width * (unsigned long long)height;
	if (width < 8 || width >= 32768)
		return promised(r, 4 * pixels, "HDR", buf, len);
	for (int y = 0; y < height; y++) {
		unsigned c1 = get8(r), c2 = get8(r), hi = get8(r), lo = get8(r);
		if (c1 != 2 || c2 != 2 || (hi & 0x80))
			return promised(r, 4 * (pixels - 1), "HDR", buf, len);
		if ((int)(hi << 8 | lo) != width)
			return NULL;    /* stb_image refuses it */
		for (int k = 0; k < 4; k++)
			for (int i = 0; i < width;) {
				unsigned count = get8(r);
				if (count == 0)
					return "corrupt HDR: its run-length data has a count of 0 or ends early";
				int run = count > 128 ? (int)count - 128 : (int)count;
				if (run > width - i)
					return NULL;    /* stb_image refuses it */
				r->at += count > 128 ? 1 : (size_t)count;
				i += run;
			}
	}
	return NULL;
}

/* --- TGA ------------------------------------------------------------------- */

/* A TGA file, as stbi__tga_test takes one (stb_image tries TGA last, and no
 * other format's file has a second byte of 0 or 1): NULL, or what is wrong
 * with its pixels. Uncompressed true-colour and grey pixels (not 15- and
 * 16-bit RGB) are read a row at a time without a check, and what is not
 * there comes back uninitialised; the other kinds read 0 past the end. */
static const char *tga_check(reader *r, char *buf, size_t len)
{
	unsigned offset = get8(r), mapped = get8(r), type = get8(r);
	r->at = 12;
	unsigned width = get16le(r), height = get16le(r);
	unsigned bits = get8(r);
	if (mapped || (type != 2 && type != 3 && type != 10 && type != 11) || width < 1 ||
	    height < 1 || (bits != 8 && bits != 15 && bits != 16 && bits != 24 && bits != 32))
		return NULL;    /* not a TGA, colour-mapped, or ... */
	if (type >= 8 || bits == 15 || (bits == 16 && type != 3))
		return NULL;    /* ... run-length coded, or 15- or 16-bit RGB */
	unsigned comp = bits == 16 ? 2 : bits / 8;
	r->at = 18 + (size_t)offset;
	return promised(r, (unsigned long long)width * height * comp, "TGA", buf, len);
}

/* --- BMP ------------------------------------------------------------------- */

/* Colour index x of a row of 1, 4 or 8 bits a pixel starting at r's
 * position. */
static unsigned bmp_index(const reader *r, unsigned bits, size_t x)
{
	size_t at = r->at + x * bits / 8;
	unsigned byte = at < r->len ? r->p[at] : 0;
	return bits == 8 ? byte : bits == 4 ? (x % 2 ? byte : byte >> 4) & 15 : byte >> (7 - x % 8) & 1;
}

/* A BMP of 1, 4 or 8 bits a pixel, as stbi__bmp_load 2.27 reads it: NULL,
 * or what is wrong with its palette. stb_image counts the palette's
 * colours from where the pixels start, reads none when that count is
 * negative, and takes a colour past it from an uninitialised array; so
 * each pixel's index must be within the count. */
static const char *bmp_check(reader *r, char *buf, size_t len)
{
	r->at = 10;
	long offset = (int32_t)get32le(r), hsz = (long)get32le(r);
	if (hsz != 12 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124)
		return NULL;    /* stb_image refuses it */
	uint32_t width = hsz == 12 ? get16le(r) : get32le(r);
	uint32_t height = hsz == 12 ? get16le(r) : get32le(r);
	unsigned planes = get16le(r), bits = get16le(r);
	if (planes != 1 || (bits != 1 && bits != 4 && bits != 8) || (hsz != 12 && (int32_t)get32le(r) > 0))
		return NULL;    /* stb_image refuses it, or the pixels are not indices */
	long colours = hsz == 12 ? (offset - 14 - 24) / 3 : (offset - 14 - hsz) >> 2;
	if (colours < 0)
		return "corrupt BMP: its pixels start before the end of its header, leaving no "
		       "room for its palette";
	int64_t rows = (int32_t)height < 0 ? -(int64_t)(int32_t)height : (int64_t)height;
	if (colours == 0 || colours > 256 || width > 1 << 24 || rows > 1 << 24 ||
	    (uint64_t)width * (uint64_t)rows * 3 > INT32_MAX)
		return NULL;    /* stb_image refuses it */
	size_t row = ((size_t)width * bits + 7) / 8;
	r->at = (size_t)offset;
	for (int64_t y = 0; y < rows && !at_end(r); y++, r->at += row + (4 - row % 4) % 4)
		for (size_t x = 0; x < width; x++) {
			unsigned i = bmp_index(r, bits, x);
			if (i >= (unsigned long)colours) {
				snprintf(buf, len, "corrupt BMP: a pixel is colour %u of a palette of %ld", i,
				         colours);
				return buf;
			}
		}
	return NULL;
}

/* --- all ------------------------------------------------------------------- */

const char *rt_image_check(const uint8_t *p, size_t len, char *buf, size_t buflen)
{
	static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	reader r = { p, len, 0 };
	if (len >= 8 && memcmp(p, png_sig, 8) == 0) {
		r.at = 8;
		return png_check(&r, buf, buflen);
	}
	jpeg_walk w = { .r = r, .marker = NO_MARKER };
	if (len >= 2 && p[0] == 0xff && next_marker(&w) == 0xd8)
		return jpeg_walk_all(&w) == WALK_REFUSE ? w.why : NULL;
	if (len >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6'))
		return pnm_check(&r, buf, buflen);
	if (len >= 2 && p[0] == 'B' && p[1] == 'M')
		return bmp_check(&r, buf, buflen);
	if (len >= 2 && p[0] == '#' && p[1] == '?')
		return hdr_check(&r, buf, buflen);
	if (len >= 2 && p[1] <= 1)
		return tga_check(&r, buf, buflen);
	return NULL;
}

/* data_impl: what the data readers (data.c, cifar.c, image_dir.c,
 * image_read.c, image_check.c)
 * share and nobody else needs. Messages follow data.h: one line that
 * starts with the file name. */
#ifndef DDPMC_RUNTIME_DATA_IMPL_H
#define DDPMC_RUNTIME_DATA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

/* Opens path through zlib (gzipped and raw files read alike); NULL with
 * "PATH: cannot open: REASON" in err. */
gzFile rt_data_gzopen(const char *path, char *err, size_t errlen);

/* Appends to *buf (malloc'd, *len bytes so far) what f holds, until EOF or
 * until *len reaches limit; the buffer grows with the data actually read,
 * so a header that promises too much costs nothing. RT_ERR with a message
 * on a corrupt gzip stream, a read error or out of memory. */
int rt_data_read(gzFile f, const char *path, size_t limit, uint8_t **buf, size_t *len,
                 char *err, size_t errlen);

/* RT_ERR with "PATH: images are 28x28 grey, the model takes 32x32 RGB". */
int rt_data_size_error(const char *path, int64_t c, int64_t h, int64_t w, int64_t mc,
                       int64_t mh, int64_t mw, char *err, size_t errlen);

/* RT_ERR with "PATH: cannot open: REASON" (errno's). */
int rt_data_open_error(const char *path, char *err, size_t errlen);

/* NULL when stb_image may read the image file p[0..len), else what is
 * wrong with it ("corrupt JPEG: ...", written in buf when it quotes
 * numbers): the fields stb_image 2.27 trusts (image_check.c). */
const char *rt_image_check(const uint8_t *p, size_t len, char *buf, size_t buflen);

/* 1 when name ends with suffix. */
int rt_data_ends_with(const char *name, const char *suffix);

#endif

/* data: training images read from the files data sets ship in, and the
 * loader that feeds them to a training run in a reproducible order
 * (docs/semantics.md §8).
 *
 * Images are N x C x H x W bytes (0..255), row-major, channel planes as
 * CIFAR stores them; scaling to [-1, 1] (x / 127.5 - 1) happens when a
 * batch is made.
 *
 * What rt_dataset_open reads, by its spec:
 *   "fashion-mnist"              Debian's dataset-fashion-mnist training set
 *                                (RT_FASHION_MNIST)
 *   an IDX file, gzipped or raw  MNIST, Fashion-MNIST: magic 0x00000803
 *                                (u8, rank 3), N x H x W; C = 1
 *   a file named *.bin[.gz]      a CIFAR-10 binary batch: records of 1 label
 *                                byte (0..9) + 3072 bytes, the R, G, B planes
 *                                of a 32x32 image; C = 3
 *   a .png file                  a data set of that one image
 *   a folder holding             data_batch_*.bin: all of them, in numeric
 *                                order (test_batch.bin is not read); else
 *                                train-images-idx3-ubyte[.gz]: that file;
 *                                else *.png: every PNG, sorted by name
 * PNG images (rt_png_read) must be exactly H x W. For C = 1: grey PNGs of
 * any bit depth; a colour PNG only when every pixel has R = G = B (tools
 * often save grey images as RGB), else it is rejected naming the first
 * coloured pixel. For C = 3: RGB or palette; a grey PNG is replicated to
 * R = G = B (lossless). Alpha and tRNS are dropped, not composited: the
 * stored colour values are the data. 16-bit samples round to 8 bits
 * (v * 255 / 65535). Gamma and colour-profile chunks are ignored.
 *
 * Errors: every reader returns RT_OK, or RT_ERR with one line in err (errlen
 * bytes, NUL-terminated) that starts with the file name and says what is
 * wrong: missing or unreadable, corrupt (wrong magic, implausible or wrong
 * dimensions, short read, trailing data, bad gzip stream, bad PNG), or
 * images of another size than the model's. On failure *out is empty.
 * No input, however malformed, makes them crash or allocate more than the
 * file's own size plus the images it really holds.
 */
#ifndef DDPMC_RUNTIME_DATA_H
#define DDPMC_RUNTIME_DATA_H

#include <stddef.h>
#include <stdint.h>

#define RT_FASHION_MNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

typedef struct {
	int64_t n, c, h, w;
	uint8_t *pixels;        /* (n, c, h, w) */
	uint8_t *labels;        /* (n) each image's class, or NULL (rt_dataset_labels) */
} rt_images;

/* Reads the data set `spec` (above) for a model that takes c x h x w
 * images; the images' size is checked against it. */
int rt_dataset_open(const char *spec, int64_t c, int64_t h, int64_t w, rt_images *out,
                    char *err, size_t errlen);

/* LABELS. The labels of the IDX data set `spec` names (as rt_dataset_open
 * takes it), read into im->labels: the IDX labels file beside the images
 * file, named as MNIST names them (train-images-idx3-ubyte[.gz] ->
 * train-labels-idx1-ubyte[.gz], gzipped or raw); magic 0x00000801 (u8,
 * rank 1), exactly im->n labels, each below 256. Missing labels, a count
 * other than im->n and data sets other than IDX are errors naming the
 * file looked for. */
int rt_dataset_labels(const char *spec, rt_images *im, char *err, size_t errlen);
/* An IDX labels file of exactly n labels into *labels (malloc'd, n). */
int rt_idx_read_labels(const char *path, int64_t n, uint8_t **labels, char *err,
                       size_t errlen);
/* The IDX file of spec (a file, "fashion-mnist" or a folder holding
 * train-images-idx3-ubyte[.gz]) with `from` in its base name replaced by
 * `to`, into out: e.g. ("train-", "t10k-") gives the test set beside a
 * training set. RT_ERR with a message when spec names no IDX file, its
 * base name lacks `from`, or the result does not exist (both the name and
 * the name with/without ".gz" are tried). */
int rt_idx_sibling(const char *spec, const char *from, const char *to, char *out,
                   size_t outlen, char *err, size_t errlen);

/* The readers behind it. An IDX image file, gzipped or raw, of any image
 * size (the caller checks it). */
int rt_idx_read_images(const char *path, rt_images *out, char *err, size_t errlen);
/* A CIFAR-10 batch file (gzipped or raw), or a folder's data_batch_*.bin. */
int rt_cifar_read(const char *path, rt_images *out, char *err, size_t errlen);
/* One PNG file as c x h x w (c = 1 or 3) into px (c, h, w), by the rules
 * above. */
int rt_png_read(const char *path, int64_t c, int64_t h, int64_t w, uint8_t *px,
                char *err, size_t errlen);
/* Every *.png in folder dir (names sorted bytewise; dot files skipped). */
int rt_pngdir_read(const char *dir, int64_t c, int64_t h, int64_t w, rt_images *out,
                   char *err, size_t errlen);

/* Writes images [first, first + count) wrapping around, scaled to [-1, 1],
 * into out (count, c, h, w). */
void rt_images_batch(const rt_images *im, int64_t first, int64_t count, float *out);

/* Image i scaled to [-1, 1] into out (c, h, w), mirrored left-right
 * (x -> w - 1 - x in every row of every channel) when flip is set. */
void rt_images_scaled(const rt_images *im, int64_t i, int flip, float *out);

void rt_images_free(rt_images *im);

/* THE ORDER CONTRACT. A training run reads an endless sequence of epochs.
 * Position q = 0, 1, 2, ... (counted in images, not steps) is image
 * perm_e[q mod n] of epoch e = q / n, where perm_e = rt_data_order(n, seed,
 * e) is a Fisher-Yates shuffle driven by Philox uniforms (philox.h) of
 * stream (seed, RT_DATA_SHUFFLE_STREAM + e):
 *     perm = 0, 1, ..., n - 1
 *     for i = n - 1 down to 1:
 *         u = uniform element i;  j = min(floor(u * (i + 1)), i)
 *         swap perm[i], perm[j]
 * (u * (i + 1) is computed in double.) With flipping on, the image at
 * position q is mirrored when uniform element q of stream (seed,
 * RT_DATA_FLIP_STREAM) is <= 0.5: exactly half of the 2^24 values. Both
 * depend only on (seed, q), so the batch at a position is the same however
 * the run was split into resumed pieces. Streams 2^62 + e (e < 2^61) and
 * 3 * 2^61 stay clear of the step-keyed streams of docs/semantics.md §6. */
#define RT_DATA_SHUFFLE_STREAM (UINT64_C(1) << 62)
#define RT_DATA_FLIP_STREAM (UINT64_C(3) << 61)

/* perm (n): the order of epoch `epoch`. */
void rt_data_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);
/* 1 when the image at position q is mirrored (with flipping on). */
int rt_data_flipped(uint64_t seed, int64_t q);

/* The loader: a thread that makes the next batch while the caller computes
 * on the current one (double buffering: one batch ready, one being used).
 * Batch k of a loader opened at position p holds positions p + k*B ..
 * p + k*B + B - 1, scaled to [-1, 1] and flipped by the contract above.
 * rt_loader_next copies it to out (B, c, h, w) and sets *position (when
 * not NULL) to p + (k + 1) * B: the position a checkpoint written after
 * the step that used this batch stores, and that rt_loader_open takes to
 * continue exactly. A run of S steps from position 0 ends at S * B. The
 * loader borrows im, which must outlive it.
 *
 * Shards (data-parallel training): R processes each open a loader with
 * their shard r of R; a step's global batch is the R * B positions after
 * the previous step's, of which shard r takes the r-th B: batch k holds
 * p + (k*R + r)*B .. p + (k*R + r)*B + B - 1 and *position becomes
 * p + (k + 1)*R*B, the same on every shard. The shards of a step are
 * disjoint and together are the batch one process of batch R * B reads. */
typedef struct rt_loader rt_loader;

int rt_loader_open(const rt_images *im, int64_t batch, uint64_t seed, int flip,
                   int64_t position, int shard, int shards, rt_loader **out, char *err,
                   size_t errlen);
/* labels (B): the batch's labels, when not NULL (the images must have
 * them). */
void rt_loader_next(rt_loader *ld, float *out, int32_t *labels, int64_t *position);
void rt_loader_close(rt_loader *ld);    /* NULL is fine */

#endif

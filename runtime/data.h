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
 *   an image file                a data set of that one image (below)
 *   a folder holding             data_batch_*.bin: all of them, in numeric
 *                                order (test_batch.bin is not read); else
 *                                train-images-idx3-ubyte[.gz]: that file;
 *                                else an image folder (below)
 *
 * IMAGE FILES are whatever stb_image (Debian's libstb) decodes, told by
 * their extension (any case): .png .jpg .jpeg .bmp .gif (first frame)
 * .tga .psd .hdr (tone-mapped to 8 bits) .pic .pnm .ppm .pgm; a file
 * without such an extension is still read when it starts with the PNG
 * signature. 16-bit samples keep their high byte. Alpha is dropped, not
 * composited: the stored colour values are the data. An image is grey
 * (grey or grey + alpha) or RGB (RGB, RGBA, palette); rt_image_opts says
 * what happens when that differs from the model's C (1 or 3), and when its
 * size differs from H x W. An image folder is searched recursively (dot
 * files and folders skipped, symbolic links followed, 16 levels deep);
 * files without an image extension are skipped, an image that does not
 * decode is an error naming it. Its images are in bytewise order of their
 * paths below the folder. When every image lies in a sub-folder, the
 * sub-folder directly below the folder is its class, as torchvision's
 * ImageFolder has it: class names sorted bytewise are labels 0..K-1 (kept
 * in labels when K <= 256; images directly in the folder: no labels).
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
	/* With RT_CROP_RANDOM: every image resized but not cropped, image i
	 * (c, full_dims[3i + 1], full_dims[3i + 2]) at full + full_dims[3i];
	 * pixels then holds their centre crops. Else both NULL. */
	uint8_t *full;
	int64_t *full_dims;     /* (n, 3) offset, height, width */
} rt_images;

/* What is done to image files (not to IDX or CIFAR data) on the way in.
 * Without resize or crop an image must be exactly H x W, else it is
 * refused naming the file and both sizes. */
typedef enum { RT_CROP_NONE, RT_CROP_CENTER, RT_CROP_RANDOM } rt_crop;
typedef enum { RT_CHANNELS_AS_IS, RT_CHANNELS_GREY, RT_CHANNELS_RGB } rt_channels;
typedef struct {
	/* resize: the image is scaled, keeping its aspect ratio, to the
	 * smallest size that covers H x W (a square model: the shorter side
	 * to H, the longer to floor(H * long / short), as torchvision's
	 * Resize(H)), with PIL's bilinear filter, widened by the scale factor
	 * when shrinking (antialiased, as torchvision's Resize on images). */
	int resize;
	/* crop: an image larger than H x W (after resizing) is cut to H x W:
	 * CENTER at top = round-half-even((height - H) / 2), left likewise
	 * (torchvision's CenterCrop); RANDOM at a place the loader draws for
	 * every position from the run's seed (rt_data_crop). NONE (the default)
	 * is CENTER when resize is set. */
	rt_crop crop;
	/* channels: AS_IS refuses a grey image for an RGB model and an RGB
	 * image for a grey one, naming the file; GREY converts RGB to ITU-R
	 * BT.601 luma as PIL's convert("L") does, (19595 R + 38470 G + 7471 B
	 * + 2^15) >> 16 (a grey model only); RGB replicates grey to R = G = B
	 * (an RGB model only). */
	rt_channels channels;
} rt_image_opts;

/* Reads the data set `spec` (above) for a model that takes c x h x w
 * images; the images' size is checked against it. opts may be NULL (the
 * defaults: every field 0). */
int rt_dataset_open(const char *spec, int64_t c, int64_t h, int64_t w,
                    const rt_image_opts *opts, rt_images *out, char *err, size_t errlen);

/* LABELS. The labels of the IDX data set `spec` names (as rt_dataset_open
 * takes it), read into im->labels: the IDX labels file beside the images
 * file, named as MNIST names them (train-images-idx3-ubyte[.gz] ->
 * train-labels-idx1-ubyte[.gz], gzipped or raw); magic 0x00000801 (u8,
 * rank 1), exactly im->n labels, each below 256. Missing labels, a count
 * other than im->n and data sets other than IDX are errors naming the
 * file looked for. An image folder's class labels (above) are read with its
 * images; they are kept as they are. */
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
/* One image file (rules above) for a model of c x h x w (c = 1 or 3),
 * converted and resized by opts (not cropped): *px (malloc'd; c, *ih, *iw)
 * is at least h x w when opts crop, else exactly h x w. Images over 2^26
 * pixels, in the file or once resized, are refused before they are
 * decoded. */
int rt_image_read(const char *path, int64_t c, int64_t h, int64_t w,
                  const rt_image_opts *opts, uint8_t **px, int64_t *ih, int64_t *iw,
                  char *err, size_t errlen);
/* The size (*h, *w) an image file's header claims, checked as
 * rt_image_read checks it; nothing is decoded. */
int rt_image_size(const char *path, int64_t *h, int64_t *w, char *err, size_t errlen);
/* An image file or an image folder (rules above) as a data set. */
int rt_imagedir_read(const char *path, int64_t c, int64_t h, int64_t w,
                     const rt_image_opts *opts, rt_images *out, char *err, size_t errlen);
/* 1 when the file name has an image extension (above). */
int rt_image_name(const char *name);

/* Bytes src (c, sh, sw) resized to dst (c, dh, dw) with PIL's bilinear
 * filter: output pixel x samples the input around (x + 0.5) * sw / dw - 0.5
 * with the triangle weights max(0, 1 - |d| / s), s = max(1, sw / dw),
 * normalised to sum 1; rows, then columns, in float; rounded to bytes.
 * RT_ERR only when out of memory. */
int rt_image_resize(const uint8_t *src, int64_t c, int64_t sh, int64_t sw, uint8_t *dst,
                    int64_t dh, int64_t dw);

/* Writes images [first, first + count) wrapping around, scaled to [-1, 1],
 * into out (count, c, h, w). */
void rt_images_batch(const rt_images *im, int64_t first, int64_t count, float *out);

/* Image i scaled to [-1, 1] into out (c, h, w), mirrored left-right
 * (x -> w - 1 - x in every row of every channel) when flip is set. */
void rt_images_scaled(const rt_images *im, int64_t i, int flip, float *out);
/* The same for the image at position q of a run of seed `seed` (the order
 * contract below): with im->full, cut from image i at rt_data_crop's place;
 * else rt_images_scaled. */
void rt_images_drawn(const rt_images *im, int64_t i, uint64_t seed, int64_t q, int flip,
                     float *out);

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
 * RT_DATA_FLIP_STREAM) is <= 0.5: exactly half of the 2^24 values. With
 * random crops, the image at position q, resized to fh x fw, is cut at
 * top = min(floor(u0 * (fh - h + 1)), fh - h), left likewise from u1 and
 * fw, u0 and u1 being uniform elements 2q and 2q + 1 of stream (seed,
 * RT_DATA_CROP_STREAM). All depend only on (seed, q), so the batch at a
 * position is the same however the run was split into resumed pieces.
 * Streams 2^62 + e (e < 2^61), 3 * 2^61 and 3 * 2^61 + 1 stay clear of the
 * step-keyed streams of docs/semantics.md §6. */
#define RT_DATA_SHUFFLE_STREAM (UINT64_C(1) << 62)
#define RT_DATA_FLIP_STREAM (UINT64_C(3) << 61)
#define RT_DATA_CROP_STREAM ((UINT64_C(3) << 61) + 1)

/* perm (n): the order of epoch `epoch`. */
void rt_data_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);
/* 1 when the image at position q is mirrored (with flipping on). */
int rt_data_flipped(uint64_t seed, int64_t q);
/* The random crop's place (top, left) at position q for an image of
 * fh x fw cut to h x w. */
void rt_data_crop(uint64_t seed, int64_t q, int64_t fh, int64_t fw, int64_t h, int64_t w,
                  int64_t *top, int64_t *left);

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

/* safetensors: read and write tensor sets in the safetensors format
 * (https://github.com/huggingface/safetensors), the checkpoint format shared
 * with torch and diffusers.
 *
 * File layout: an 8-byte little-endian u64 N, then N bytes of JSON
 *   {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]},
 *    ..., "__metadata__": {"KEY": "VALUE", ...}}
 * then the data region; BEGIN and END are byte offsets into that region.
 *
 * Reading accepts what torch writes: any whitespace in the header, members
 * in any order, data in an order other than the header's, unused bytes in
 * the data region. It rejects, with a one-line message that starts with the
 * file name, every header that does not describe disjoint in-range tensors
 * of the declared size. On success the set holds copies of the data (so
 * the buffer may be freed) and the metadata pairs; on failure the set is
 * freed and left empty. Only little-endian hosts are supported.
 *
 * Checksums: the writer adds the metadata key "crc32", a JSON object (as
 * a string) giving every tensor's name the CRC-32 (zlib's) of its bytes,
 * 8 hex digits: {"conv.weight": "1c291ca3", ...}. The reader checks every
 * tensor against it when it is there (a file without it, as torch and
 * diffusers write, is read unchecked) and keeps it out of the set's
 * metadata; a tensor whose bytes differ is an error naming it.
 *
 * Writing produces what torch's safe_open and save_file expect: tensors
 * packed back to back in set order (no gaps, as safetensors requires), the
 * header padded with spaces so the data region starts at a multiple of 8.
 * The write is atomic: PATH.tmp.<pid> is written, flushed and fsync'd, then
 * renamed over PATH and the directory is fsync'd. On failure the temporary
 * file is removed and an existing PATH is left as it was. */
#ifndef DDPMC_RUNTIME_SAFETENSORS_H
#define DDPMC_RUNTIME_SAFETENSORS_H

#include <stddef.h>

#include "tensor.h"

/* Each returns RT_OK, or RT_ERR with a message in err (errlen bytes,
 * always NUL-terminated when errlen > 0). out must be empty (zeroed). */
int rt_st_read(const char *path, rt_tensorset *out, char *err, size_t errlen);
/* Parses a whole file already in memory; what names it in messages. */
int rt_st_parse(const void *buf, size_t len, const char *what,
                rt_tensorset *out, char *err, size_t errlen);
int rt_st_write(const char *path, const rt_tensorset *ts,
                char *err, size_t errlen);

#endif

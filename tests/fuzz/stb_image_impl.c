/* stb_image_impl: stb_image's implementation compiled into the fuzz build's
 * runtime, instrumented with it, in place of Debian's prebuilt libstb.a (which
 * the other builds link): the PNG harness then steers by coverage inside the
 * decoder, and ASan sees its reads. Only tests/fuzz/CMakeLists.txt builds it. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

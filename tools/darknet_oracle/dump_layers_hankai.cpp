/*
 * dump_layers_hankai: dump_layers.c for hank-ai's Darknet (github.com/hank-ai/darknet, C++), built
 * with CMake for the CPU. Same arguments and output as dump_layers.c:
 *
 *   dump_layers_hankai CFG WEIGHTS INPUT.f32 OUT_PREFIX [fuse [RESAVED.weights]]
 *
 * Compile against the source tree's src-lib headers and the built libdarknet.so (README.md).
 */
#include <cstdio>
#include <cstdlib>
#include "darknet_internal.hpp"

int main(int argc, char **argv)
{
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s CFG WEIGHTS INPUT.f32 OUT_PREFIX [fuse [RESAVED.weights]]\n", argv[0]);
        return 2;
    }
    Darknet::Network net = parse_network_cfg_custom(argv[1], 1, 1);
    load_weights(&net, argv[2]);
    if (argc > 6) save_weights(net, argv[6]);
    if (argc > 5 && std::atoi(argv[5])) fuse_conv_batchnorm(net);
    calculate_binary_weights(&net);

    size_t n = (size_t)net.w * net.h * net.c;
    float *input = (float *)std::calloc(n, sizeof(float));
    FILE *f = std::fopen(argv[3], "rb");
    if (!f || std::fread(input, sizeof(float), n, f) != n) {
        std::fprintf(stderr, "cannot read %zu floats from %s\n", n, argv[3]);
        return 1;
    }
    std::fclose(f);

    network_predict(net, input);
    for (int i = 0; i < net.n; ++i) {
        char path[4096];
        std::snprintf(path, sizeof(path), "%s%03d.f32", argv[4], i);
        FILE *o = std::fopen(path, "wb");
        if (!o) { std::perror(path); return 1; }
        std::fwrite(net.layers[i].output, sizeof(float), net.layers[i].outputs, o);
        std::fclose(o);
    }
    std::free(input);
    return 0;
}

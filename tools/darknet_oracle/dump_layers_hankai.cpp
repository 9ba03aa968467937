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
#include "oracle_io.h"

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
    float *input = read_floats(argv[3], n);
    if (!input) return 1;

    network_predict(net, input);
    for (int i = 0; i < net.n; ++i)
        if (write_layer(argv[4], i, net.layers[i].output, net.layers[i].outputs)) return 1;
    std::free(input);
    return 0;
}

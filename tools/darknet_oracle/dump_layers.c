/*
 * dump_layers: every layer's output from a real Darknet build, for darkweights' reference fixtures.
 * Not part of the package and not run by the tests: it regenerates the fixtures under
 * tests/data/oracle/ (see README.md beside this file). Links against an AlexeyAB libdarknet.so.
 *
 *   dump_layers CFG WEIGHTS INPUT.f32 OUT_PREFIX [fuse [RESAVED.weights]]
 *
 * Runs Darknet's inference path as `darknet detector test` sets it up (parse with batch 1 and
 * time_steps 1, load_weights, optionally fuse_conv_batchnorm, calculate_binary_weights,
 * network_predict) and writes OUT_PREFIX<NNN>.f32 with l.outputs float32 values per layer. With
 * RESAVED, Darknet's save_weights writes back what it loaded (before fusing): equal bytes prove
 * that the cfg and the weights layout agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include "darknet.h"
#include "oracle_io.h"

network parse_network_cfg_custom(char *filename, int batch, int time_steps);
void load_weights(network *net, char *filename);
void save_weights(network net, char *filename);

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s CFG WEIGHTS INPUT.f32 OUT_PREFIX [fuse [RESAVED.weights]]\n", argv[0]);
        return 2;
    }
    gpu_index = -1;  /* as darknet.c's main sets it in CPU builds (calculate_binary_weights reads it) */
    network net = parse_network_cfg_custom(argv[1], 1, 1);
    load_weights(&net, argv[2]);
    if (argc > 6) save_weights(net, argv[6]);
    if (argc > 5 && atoi(argv[5])) fuse_conv_batchnorm(net);
    calculate_binary_weights(net);

    size_t n = (size_t)net.w * net.h * net.c;
    float *input = read_floats(argv[3], n);
    if (!input) return 1;

    network_predict(net, input);
    for (int i = 0; i < net.n; ++i)
        if (write_layer(argv[4], i, net.layers[i].output, net.layers[i].outputs)) return 1;
    free(input);
    return 0;
}

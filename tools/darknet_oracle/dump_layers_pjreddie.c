/*
 * dump_layers_pjreddie: dump_layers.c for pjreddie's Darknet (github.com/pjreddie/darknet), whose
 * library API differs (networks by pointer, no batch/time_steps arguments, no BN fusing).
 *
 *   dump_layers_pjreddie CFG WEIGHTS INPUT.f32 OUT_PREFIX [ignored [RESAVED.weights]]
 *
 * parse_network_cfg, load_weights, set_batch_network(1), network_predict; then OUT_PREFIX<NNN>.f32
 * with l.outputs float32 values per layer. RESAVED: save_weights of what was loaded.
 *
 * Two CPU defects are worked around so that these layers can be checked at all:
 *  - make_deconvolutional_layer leaves l.groups at 0 and load_convolutional_weights divides by it
 *    (SIGFPE). groups is set to 1 before loading, which is the layout pjreddie's own save_weights
 *    writes (darknet-format.md §2.2); the deconvolution forward does not read groups.
 *  - make_batchnorm_layer allocates l.x only for the GPU, and forward_batchnorm_layer copies into it
 *    (SIGSEGV for every stand-alone [batchnorm]). The buffer is allocated here; the forward only
 *    stores into it.
 *
 * numload=K: load_convolutional_weights reads K filters; the others keep make_convolutional_layer's
 * values, whose weights come from rand(). Those weights are set to 0 after loading (before RESAVED is
 * written), so that the outputs do not depend on the C library's random sequence.
 */
#include <stdio.h>
#include <stdlib.h>
#include "darknet.h"
#include "oracle_io.h"

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s CFG WEIGHTS INPUT.f32 OUT_PREFIX [ignored [RESAVED.weights]]\n", argv[0]);
        return 2;
    }
    network *net = parse_network_cfg(argv[1]);
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type == DECONVOLUTIONAL && l->groups == 0) l->groups = 1;
        if (l->type == BATCHNORM && !l->x) l->x = calloc((size_t)l->outputs * l->batch, sizeof(float));
    }
    load_weights(net, argv[2]);
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type == CONVOLUTIONAL && l->numload > 0 && l->numload < l->n) {
            size_t per = (size_t)l->c / l->groups * l->size * l->size;
            for (size_t j = per * l->numload; j < per * l->n; ++j) l->weights[j] = 0;
        }
    }
    if (argc > 6) save_weights(net, argv[6]);
    set_batch_network(net, 1);

    size_t n = (size_t)net->w * net->h * net->c;
    float *input = read_floats(argv[3], n);
    if (!input) return 1;

    network_predict(net, input);
    for (int i = 0; i < net->n; ++i)
        if (write_layer(argv[4], i, net->layers[i].output, net->layers[i].outputs)) return 1;
    free(input);
    return 0;
}

/*
 * detect_pjreddie: the detections of pjreddie Darknet's `detector test` (examples/detector.c:test_detector)
 * for one image, as JSON, so that darkweights' `detect --dialect pjreddie` can be compared with them.
 *
 *   detect_pjreddie CFG WEIGHTS IMAGE [-thresh T] [-hier H] [-nms N] [-all 1] [-dump-image F] [-dump-input F]
 *
 * Same steps and defaults as test_detector (thresh .5, hier .5, nms .45): parse the cfg, load the weights,
 * set_batch_network(1), load_image_color, letterbox_image to the network size, network_predict,
 * get_network_boxes(net, im.w, im.h, thresh, hier, 0, relative=1), then do_nms_sort with the class count of
 * the network's LAST layer (test_detector's `l = net->layers[net->n-1]`). Printed: every detection with a
 * class probability > 0, in the final array order, one entry per (detection, class):
 * [array index, class id, prob, x, y, w, h, objectness] with the box relative to the image (det.bbox).
 * Floats are printed with 9 significant digits (float32 round-trips exactly).
 *
 * -all 1 also prints the whole final detection array, probabilities or not: "boxes", one
 * [index, objectness, x, y, w, h] per detection (shows do_nms_sort's zero-objectness partition).
 * -dump-image / -dump-input write load_image_color's / letterbox_image's float32 data (C, H, W).
 *
 * Work-arounds for pjreddie's CPU defects (see dump_layers_pjreddie.c): [deconvolutional] groups 0 -> 1
 * before loading, a CPU l.x buffer for stand-alone [batchnorm]. One more for test_detector itself:
 * make_network_boxes sizes every prob array by the last layer's l.classes, which is 0 when that layer is not
 * a detection head (a [softmax] after a [yolo] one, say), and get_yolo_detections then writes past the
 * calloc(0) blocks. In that case the detection array is allocated here with room for the heads' classes and
 * filled by the library's own fill_network_boxes; the values are the same, without the heap overflow. NMS
 * still gets the last layer's class count, as in test_detector.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "darknet.h"
#include "oracle_io.h"

/* in libdarknet.so (src/network.c) but not declared in darknet.h */
int num_detections(network *net, float thresh);
void fill_network_boxes(network *net, int w, int h, float thresh, float hier, int *map, int relative, detection *dets);

static int dump(const char *path, image im)
{
    if (write_floats(path, im.data, (size_t)im.w * im.h * im.c)) return 1;
    fprintf(stderr, "%s: %d x %d x %d float32 (C, H, W)\n", path, im.c, im.h, im.w);
    return 0;
}

static int is_head(LAYER_TYPE t) { return t == YOLO || t == REGION || t == DETECTION; }

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s CFG WEIGHTS IMAGE [-thresh T] [-hier H] [-nms N] [-all 1] [-dump-image F] "
                "[-dump-input F]\n",
                argv[0]);
        return 2;
    }
    const char *cfg = argv[1], *weights = argv[2], *path = argv[3];
    float thresh = arg_float(argc, argv, "-thresh", .5);
    float hier = arg_float(argc, argv, "-hier", .5);
    float nms = arg_float(argc, argv, "-nms", .45);
    int all = (int)arg_float(argc, argv, "-all", 0);

    /* load_network(cfg, weights, 0), with the work-arounds between parsing and loading */
    network *net = parse_network_cfg((char *)cfg);
    int head_classes = 0;
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type == DECONVOLUTIONAL && l->groups == 0) l->groups = 1;
        if (l->type == BATCHNORM && !l->x) l->x = calloc((size_t)l->outputs * l->batch, sizeof(float));
        if (is_head(l->type) && l->classes > head_classes) head_classes = l->classes;
    }
    load_weights(net, (char *)weights);
    set_batch_network(net, 1);

    image im = load_image_color((char *)path, 0, 0);
    image sized = letterbox_image(im, net->w, net->h);
    const char *dump_image = arg_str(argc, argv, "-dump-image", 0);
    const char *dump_input = arg_str(argc, argv, "-dump-input", 0);
    if (dump_image && dump(dump_image, im)) return 1;
    if (dump_input && dump(dump_input, sized)) return 1;

    network_predict(net, sized.data);

    layer last = net->layers[net->n - 1];
    int nboxes = 0;
    detection *dets;
    if (last.classes >= head_classes) {
        dets = get_network_boxes(net, im.w, im.h, thresh, hier, 0, 1, &nboxes);
    } else {
        nboxes = num_detections(net, thresh);
        dets = calloc(nboxes, sizeof(detection));
        for (int i = 0; i < nboxes; ++i) {
            dets[i].prob = calloc(head_classes, sizeof(float));
            if (last.coords > 4) dets[i].mask = calloc(last.coords - 4, sizeof(float));
        }
        fill_network_boxes(net, im.w, im.h, thresh, hier, 0, 1, dets);
    }
    if (nms) do_nms_sort(dets, nboxes, last.classes, nms);

    printf("{\"cfg\": \"%s\", \"weights\": \"%s\", \"image\": \"%s\",\n", cfg, weights, path);
    printf(" \"thresh\": %.9g, \"hier_thresh\": %.9g, \"nms\": %.9g,\n", thresh, hier, nms);
    printf(" \"net_w\": %d, \"net_h\": %d, \"im_w\": %d, \"im_h\": %d,\n", net->w, net->h, im.w, im.h);
    printf(" \"nboxes\": %d, \"nms_classes\": %d, \"head_classes\": %d,\n", nboxes, last.classes, head_classes);
    printf(" \"columns\": [\"index\", \"class_id\", \"prob\", \"x\", \"y\", \"w\", \"h\", \"objectness\"],\n");
    printf(" \"detections\": [");
    int first = 1;
    for (int i = 0; i < nboxes; ++i) {
        /* dets[i].classes is set by get_yolo_detections only; region/detection boxes carry the heads' count */
        int k = dets[i].classes > 0 ? dets[i].classes : head_classes;
        for (int j = 0; j < k; ++j) {
            if (!(dets[i].prob[j] > 0)) continue;
            box b = dets[i].bbox;
            printf("%s\n  [%d, %d, %.9g, %.9g, %.9g, %.9g, %.9g, %.9g]", first ? "" : ",", i, j, dets[i].prob[j],
                   b.x, b.y, b.w, b.h, dets[i].objectness);
            first = 0;
        }
    }
    printf("\n ]");
    if (all) {
        printf(",\n \"boxes\": [");
        for (int i = 0; i < nboxes; ++i) {
            box b = dets[i].bbox;
            printf("%s\n  [%d, %.9g, %.9g, %.9g, %.9g, %.9g]", i ? "," : "", i, dets[i].objectness, b.x, b.y, b.w, b.h);
        }
        printf("\n ]");
    }
    printf("}\n");
    fprintf(stderr, "%s: %d boxes, nms over %d classes\n", path, nboxes, last.classes);

    for (int i = 0; i < nboxes; ++i) { free(dets[i].prob); free(dets[i].mask); }
    free(dets);
    free_image(im);
    free_image(sized);
    free_network(net);
    return 0;
}

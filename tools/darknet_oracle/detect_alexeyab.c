/*
 * detect_alexeyab: the detections of AlexeyAB Darknet's `detector test` (src/detector.c:test_detector) for one
 * image, as JSON, so that darkweights' `detect` (dialect alexeyab) can be compared with them.
 *
 *   detect_alexeyab CFG WEIGHTS IMAGE [-thresh T] [-hier H] [-nms N] [-letter_box 1] [-all 1]
 *                   [-dump-image F] [-dump-input F]
 *
 * Same steps and defaults as `darknet detector test` on a CPU build (thresh .25, hier .5, nms .45):
 * gpu_index = -1 (darknet.c's main does so without GPU; calculate_binary_weights reads it),
 * parse_network_cfg_custom(cfg, 1, 1), load_weights, letter_box from the cfg's [net] letter_box (or the
 * -letter_box flag, as test_detector's), fuse_conv_batchnorm, calculate_binary_weights,
 * load_image(path, 0, 0, net.c) (stb_image in a build without OpenCV), letterbox_image or resize_image to the
 * network size, network_predict, get_network_boxes(&net, im.w, im.h, thresh, hier, 0, relative=1, &nboxes,
 * letter_box), then NMS with the settings of test_detector's `l`: the LAST [yolo] / [Gaussian_yolo] / [region]
 * layer (the last layer when there is none): do_nms_sort(dets, nboxes, l.classes, nms) when l.nms_kind is
 * DEFAULT_NMS, else diounms_sort(dets, nboxes, l.classes, nms, l.nms_kind, l.beta_nms).
 *
 * Printed: every detection with a class probability > 0, in the final array order, one entry per
 * (detection, class): [array index, class id, prob, x, y, w, h, objectness] with the box relative to the
 * image (det.bbox). Floats are printed with 9 significant digits (float32 round-trips exactly).
 * -all 1 also prints the whole final detection array ("boxes": [index, objectness, x, y, w, h]).
 * -dump-image / -dump-input write load_image's / the resized network input's float32 data (C, H, W).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "darknet.h"
#include "oracle_io.h"

/* in libdarknet.so but not declared in darknet.h */
network parse_network_cfg_custom(char *filename, int batch, int time_steps);
void load_weights(network *net, char *filename);
image load_image(char *filename, int w, int h, int c);

static int dump(const char *path, image im)
{
    if (write_floats(path, im.data, (size_t)im.w * im.h * im.c)) return 1;
    fprintf(stderr, "%s: %d x %d x %d float32 (C, H, W)\n", path, im.c, im.h, im.w);
    return 0;
}

static int is_head(LAYER_TYPE t) { return t == YOLO || t == GAUSSIAN_YOLO || t == REGION; }

static const char *nms_name(NMS_KIND k)
{
    switch (k) {
    case DEFAULT_NMS: return "default";
    case GREEDY_NMS: return "greedynms";
    case DIOU_NMS: return "diounms";
    case CORNERS_NMS: return "cornersnms";
    }
    return "?";
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s CFG WEIGHTS IMAGE [-thresh T] [-hier H] [-nms N] [-letter_box 1] [-all 1] "
                "[-dump-image F] [-dump-input F]\n", argv[0]);
        return 2;
    }
    const char *cfg = argv[1], *weights = argv[2], *path = argv[3];
    float thresh = arg_float(argc, argv, "-thresh", .25);
    float hier = arg_float(argc, argv, "-hier", .5);
    float nms = arg_float(argc, argv, "-nms", .45);
    int letter_box = (int)arg_float(argc, argv, "-letter_box", 0);
    int all = (int)arg_float(argc, argv, "-all", 0);

    /* Darknet reports its progress on stdout: send it to stderr, keep stdout for the JSON */
    fflush(stdout);
    int json_fd = dup(1);
    dup2(2, 1);

    gpu_index = -1;
    network net = parse_network_cfg_custom((char *)cfg, 1, 1);
    load_weights(&net, (char *)weights);
    if (net.letter_box) letter_box = 1;
    fuse_conv_batchnorm(net);
    calculate_binary_weights(net);
    srand(2222222);  /* as test_detector (nothing random runs at inference) */

    image im = load_image((char *)path, 0, 0, net.c);
    image sized = letter_box ? letterbox_image(im, net.w, net.h) : resize_image(im, net.w, net.h);
    const char *dump_image = arg_str(argc, argv, "-dump-image", 0);
    const char *dump_input = arg_str(argc, argv, "-dump-input", 0);
    if (dump_image && dump(dump_image, im)) return 1;
    if (dump_input && dump(dump_input, sized)) return 1;

    /* test_detector's l: the last detection head, or the last layer */
    layer l = net.layers[net.n - 1];
    int last_head = -1;
    for (int k = 0; k < net.n; ++k) {
        if (is_head(net.layers[k].type)) { last_head = k; l = net.layers[k]; }
    }
    /* make_network_boxes sizes every prob array by the class count of the first head ([detection] included) */
    int prob_classes = l.classes;
    for (int k = 0; k < net.n; ++k) {
        if (is_head(net.layers[k].type) || net.layers[k].type == DETECTION) {
            prob_classes = net.layers[k].classes;
            break;
        }
    }

    network_predict(net, sized.data);

    int nboxes = 0;
    detection *dets = get_network_boxes(&net, im.w, im.h, thresh, hier, 0, 1, &nboxes, letter_box);
    if (nms) {
        if (l.nms_kind == DEFAULT_NMS) do_nms_sort(dets, nboxes, l.classes, nms);
        else diounms_sort(dets, nboxes, l.classes, nms, l.nms_kind, l.beta_nms);
    }

    fflush(stdout);
    dup2(json_fd, 1);
    close(json_fd);

    printf("{\"cfg\": \"%s\", \"weights\": \"%s\", \"image\": \"%s\",\n", cfg, weights, path);
    printf(" \"thresh\": %.9g, \"hier_thresh\": %.9g, \"nms\": %.9g, \"letter_box\": %d,\n", thresh, hier, nms,
           letter_box);
    printf(" \"nms_layer\": %d, \"nms_kind\": \"%s\", \"beta_nms\": %.9g, \"nms_classes\": %d,\n", last_head,
           nms_name(l.nms_kind), l.beta_nms, l.classes);
    printf(" \"net_w\": %d, \"net_h\": %d, \"im_w\": %d, \"im_h\": %d, \"nboxes\": %d,\n", net.w, net.h, im.w,
           im.h, nboxes);
    printf(" \"columns\": [\"index\", \"class_id\", \"prob\", \"x\", \"y\", \"w\", \"h\", \"objectness\"],\n");
    printf(" \"detections\": [");
    int first = 1;
    for (int i = 0; i < nboxes; ++i) {
        int k = dets[i].classes < prob_classes ? dets[i].classes : prob_classes;
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
            printf("%s\n  [%d, %.9g, %.9g, %.9g, %.9g, %.9g]", i ? "," : "", i, dets[i].objectness, b.x, b.y, b.w,
                   b.h);
        }
        printf("\n ]");
    }
    printf("}\n");
    fprintf(stderr, "%s: %d boxes, %s nms over %d classes (layer %d)\n", path, nboxes, nms_name(l.nms_kind),
            l.classes, last_head);

    free_detections(dets, nboxes);
    free_image(im);
    free_image(sized);
    free_network(net);
    return 0;
}

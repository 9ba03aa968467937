/*
 * oracle_io.h: the file and argument handling the oracle harnesses share (C and C++), so that each
 * harness holds only what its fork's library needs. Include after the fork's darknet header.
 */
#ifndef DARKWEIGHTS_ORACLE_IO_H
#define DARKWEIGHTS_ORACLE_IO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value after `name` among the options that follow the 3 positional arguments, or `def`. */
static inline const char *arg_str(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 4; i + 1 < argc; ++i) if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

static inline float arg_float(int argc, char **argv, const char *name, float def)
{
    const char *s = arg_str(argc, argv, name, 0);
    return s ? (float)atof(s) : def;
}

/* `n` float32 values from a raw file (the network input), or NULL with a message. */
static inline float *read_floats(const char *path, size_t n)
{
    float *data = (float *)calloc(n, sizeof(float));
    FILE *f = fopen(path, "rb");
    if (!data || !f || fread(data, sizeof(float), n, f) != n) {
        fprintf(stderr, "cannot read %zu floats from %s\n", n, path);
        if (f) fclose(f);
        free(data);
        return 0;
    }
    fclose(f);
    return data;
}

/* Write `n` float32 values to `path`; 0 on success. */
static inline int write_floats(const char *path, const float *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    fwrite(data, sizeof(float), n, f);
    fclose(f);
    return 0;
}

/* Layer `index`'s output to PREFIX<NNN>.f32. */
static inline int write_layer(const char *prefix, int index, const float *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%03d.f32", prefix, index);
    return write_floats(path, data, n);
}

#endif

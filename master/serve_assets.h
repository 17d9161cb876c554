/*
 * serve_assets.h - the dashboard's files, compiled into the binary so the
 * page needs no network and no files beside nasctl.  The table is
 * generated at build time from master/web/ by cmake/NasEmbed.cmake (with
 * uPlot from master/web/node_modules when npm installed it, see
 * docs/USER-GUIDE.md).
 */
#ifndef NAS_SERVE_ASSETS_H
#define NAS_SERVE_ASSETS_H

#include <stddef.h>

typedef struct nas_serve_asset {
    const char *path;  /* URL path, e.g. "/app.js" */
    const char *ctype; /* content type */
    const unsigned char *data;
    size_t len;
} nas_serve_asset;

extern const nas_serve_asset nas_serve_assets[];
extern const int nas_serve_n_assets;

#endif

/*
 * serve.h - nasctl's watching commands, each in a file of its own:
 *   serve  the read-only HTTP server: dashboard, /metrics, JSON API, event
 *          stream (serve.c, on libmicrohttpd);
 *   top    a live terminal view (nasctl_top.c);
 *   watch  the event stream as lines or JSON (nasctl_top.c).
 * All three read the store through serve_model.h and never write it.
 */
#ifndef NAS_SERVE_H
#define NAS_SERVE_H

/* Run the command with argv[0] = the command word; returns the exit
 * status (0 ok, 1 failure, 2 usage). */
int nas_serve_command(const char *cmd, int argc, char **argv);

int nas_serve_main(int argc, char **argv);
int nas_top_main(int argc, char **argv);
int nas_watch_main(int argc, char **argv);

#endif

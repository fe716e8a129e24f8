/*
 * fileio.h - small helpers for writing files the daemon must trust: all of a
 * buffer, retrying short writes and EINTR (the audit log, password files).
 */
#ifndef PGW_FILEIO_H
#define PGW_FILEIO_H

#include <stddef.h>

/* write(2) until all n bytes are written; 0, or -1 with errno. */
int pgw_write_all(int fd, const void *p, size_t n);

#endif

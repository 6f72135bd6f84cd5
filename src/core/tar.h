/* Plain ustar headers for the snapshot writer (format.c). libarchive's
 * pax_restricted writer allocates, clones and converts an entry for every
 * header; for the common entry, whose name fits a ustar header without a
 * pax extension, this formats the very same 512 bytes directly. Entries
 * that do not fit still go through libarchive. test_tar compares the two. */
#ifndef BURRY_TAR_H
#define BURRY_TAR_H

#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512

/* The header libarchive's pax_restricted writer gives a regular file named
 * name (len bytes) of size bytes, mode 0644, owner and group 0, time 0 -
 * the entries burry writes. 0, or -1 if that writer would add a pax
 * extended header (name empty, not ASCII or too long for the ustar name
 * and prefix fields; size of 8 GiB or more): h is then unspecified. */
int tar_header(char h[TAR_BLOCK], const char *name, size_t len, uint64_t size);

#endif

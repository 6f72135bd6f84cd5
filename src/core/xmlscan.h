/* Just enough XML for the small, fixed-shape answers of object stores
 * (S3's ListObjectsV2 and error documents, Azure's List Blobs): the text of
 * the next <tag>...</tag>, with the five predefined entities and numeric
 * character references decoded. Not a general XML parser: no attributes,
 * namespaces or CDATA are needed by those answers. */
#ifndef BURRY_XMLSCAN_H
#define BURRY_XMLSCAN_H

#include <stddef.h>

/* Find the next element named tag at or after *pos in doc; copy its decoded
 * text into out (truncated to len - 1 bytes) and move *pos past it.
 * Returns 1 when found, 0 when not. */
int xml_next(const char *doc, const char **pos, const char *tag, char *out, size_t len);

/* The text of the first element named tag in doc, or "" (out as above). */
const char *xml_first(const char *doc, const char *tag, char *out, size_t len);

/* "Code: Message" from an error document, shortened, for messages; "" when
 * doc has neither. */
const char *xml_error_summary(const char *doc, char *out, size_t len);

#endif

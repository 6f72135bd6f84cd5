/* The node side of bysu: the forced command of the collector's ssh key. It
 * answers three verbs only and streams a configured snapshot as one
 * uncompressed tar (files, command output, then MANIFEST.json) to a file
 * descriptor. */
#ifndef BYSU_AGENT_H
#define BYSU_AGENT_H

#include <stddef.h>

#include "err.h"

#define BYSU_AGENT_CONF "/etc/bysu/agent.conf"

struct agent_conf;

/* The age recipients of a configuration: the "age1..." keys of list
 * (separated by spaces, tabs or commas; NULL for none) and of the recipients
 * file path (NULL for none), together in *pks (malloc'ed; NULL and 0 when
 * neither names any). */
int bysu_parse_recipients(const char *list, const char *path, unsigned char (**pks)[32], size_t *n,
                          struct burry_err *e);

/* Both INI files, bysu.conf and agent.conf, as libinih reads them: a
 * section given twice is an error (libinih would merge the two silently),
 * naming the file and both lines. */
int bysu_ini_check_sections(const char *path, struct burry_err *e);
/* The line of the first header [section] in path, or 0 when there is none. */
int bysu_ini_section_line(const char *path, const char *section);
/* The line of the first section of path that holds no key (libinih never
 * shows such a section to its handler), its name into name; 0 when every
 * section has a key. */
int bysu_ini_empty_section(const char *path, char *name, size_t len);

/* Parse agent.conf ([snapshot NAME] with command, paths, pre, post,
 * recipients, recipients_file). */
int agent_conf_load(const char *path, struct agent_conf **out, struct burry_err *e);
void agent_conf_free(struct agent_conf *c);

/* Serve one request (the text of SSH_ORIGINAL_COMMAND): "snapshot NAME",
 * "list" or "version". Output goes to out_fd; progress of pre/post commands
 * and the command's standard error go to err_fd. Anything else fails with
 * BURRY_EUSAGE and the message "refused 'CMD'". */
int agent_serve(const struct agent_conf *c, const char *request, int out_fd, int err_fd,
                struct burry_err *e);

#endif

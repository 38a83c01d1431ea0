/* polegate version string. */
#ifndef POLEGATE_VERSION_H
#define POLEGATE_VERSION_H

const char *pg_version(void);

#endif

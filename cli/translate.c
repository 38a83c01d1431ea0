/* polegate translate (placeholder until it lands). */
#include <stdio.h>

#include "cli.h"

int pg_cli_translate(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "polegate %s: not implemented yet\n", argv[0]);
    return 2;
}

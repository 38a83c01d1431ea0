/* Build identification shared by polegated and polegate. */
#include "polegate/version.h"

const char *pg_version(void)
{
    return "0.1.0";
}

#include "bar.h"
int bar(void) { return 7; }

/* main() of nexus: the shared command line (app.c) with nothing added. */
#include "nexus/app.h"

int main(int argc, char **argv) {
    return nx_app_main(argc, argv, NULL);
}

#ifndef BEAND_CSYSTEMD_SHIM_H
#define BEAND_CSYSTEMD_SHIM_H
// sd_journal_sendv is the non-variadic journald call; sd_notify is not variadic either.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <systemd/sd-daemon.h>
#include <sys/uio.h>
#endif

/* cmdline: what the two command lines (ddpmc's and the executables') share:
 * the format of a flag's help line, the checks of output paths made
 * before a command does any work, and the cache folder.
 *
 * A help line is "  NAME ARG   MEANING (default: D)"; a line of help that
 * starts with "  -" names exactly one flag, its first word (the docs test,
 * tests/test_cli_help.c, reads them so). */
#ifndef DDPMC_RUNTIME_CMDLINE_H
#define DDPMC_RUNTIME_CMDLINE_H

#include <stddef.h>

/* Prints one help line on stdout. arg: the value ("N", "FILE"), NULL for a
 * switch; dflt: a value, "(a description)", "(required)", or NULL (none). */
void rt_help_line(const char *name, const char *arg, const char *meaning, const char *dflt);

/* Folder dir exists and takes new files, or can be created (its nearest
 * existing ancestor takes new files). 0, or -1 with the reason in why
 * ("cannot create it in /x: Permission denied"). */
int rt_out_dir_check(const char *dir, char *why, size_t len);
/* File path can be written: its folder exists and takes new files, and
 * path is not a folder. 0, or -1 with the reason in why. */
int rt_out_file_check(const char *path, char *why, size_t len);

/* ddpmc's cache folder: $ENV when env names a set variable, else
 * $XDG_CACHE_HOME/ddpmc, else ~/.cache/ddpmc, into dir. 1, or 0 when
 * there is none (no HOME) or it does not fit. */
int rt_cache_dir(const char *env, char *dir, size_t len);
/* mkdir -p of the folder that holds path (path is restored). 0 or -1. */
int rt_make_parents(char *path);

#endif

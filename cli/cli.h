/* cli/cli.h: the commands of asrimg, as main.c dispatches them (argv[0] is the command name). */
#ifndef ASR_CLI_H
#define ASR_CLI_H

int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_layout(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_rescue(int argc, char **argv); /* cmd_rescue.c: rescue SUBCOMMAND */
int cmd_store(int argc, char **argv);  /* cmd_store.c: store SUBCOMMAND */
int cmd_export(int argc, char **argv); /* cmd_export.c */
int cmd_import(int argc, char **argv); /* cmd_export.c */

#endif

/* kevd's subcommands; each takes argv with argv[0] = the command's name. */
#ifndef KEVD_COMMANDS_H
#define KEVD_COMMANDS_H

int kevd_cmd_inspect(int argc, char **argv);
int kevd_cmd_run(int argc, char **argv);
int kevd_cmd_serve(int argc, char **argv);

#endif

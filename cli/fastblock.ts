/**
 * fastblock: the admin CLI. Subcommands live in cli/commands/ (listed in commands/index.ts) and
 * talk to a daemon's control RPC. Failures print one line (or, with --json, a JSON error object)
 * and exit 1; usage errors (an unknown command or option, a missing argument) exit 2.
 */
import { Command } from 'commander';
import { KERNEL_VERSION } from '../kernel/version.js';
import { COMMANDS } from './commands/index.js';
import { fail } from './daemon-client.js';

const program = new Command('fastblock').description('fastblock admin CLI').version(KERNEL_VERSION);
program.showHelpAfterError('(run with --help for usage)');
// Set before the subcommands are registered so they inherit it: commander exits 1 on usage errors,
// and scripts need to tell "you typed it wrong" (2) from "the cluster said no" (1).
program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
for (const register of COMMANDS) register(program);

program.parseAsync().catch((err: unknown) => fail(err, process.argv.includes('--json')));

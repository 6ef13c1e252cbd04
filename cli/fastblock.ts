/**
 * fastblock: the admin CLI. Subcommands live in cli/commands/ (listed in commands/index.ts) and
 * talk to a daemon's control RPC. Failures print one line (or, with --json, a JSON error object)
 * and exit 1.
 */
import { Command } from 'commander';
import { KERNEL_VERSION } from '../kernel/version.js';
import { COMMANDS } from './commands/index.js';
import { fail } from './daemon-client.js';

const program = new Command('fastblock').description('fastblock admin CLI').version(KERNEL_VERSION);
program.showHelpAfterError('(run with --help for usage)');
for (const register of COMMANDS) register(program);

program.parseAsync().catch((err: unknown) => fail(err, process.argv.includes('--json')));

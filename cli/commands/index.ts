/**
 * The `fastblock` subcommands, in the order `fastblock --help` lists them. To add one: write
 * cli/commands/<name>.ts exporting `register<Name>(program)` (every command takes --json; see
 * status.ts and ../daemon-client.ts), and add one line here.
 */
import type { Command } from 'commander';
import { registerStatus } from './status.js';
import { registerVhost } from './vhost.js';
import { registerVstart } from './vstart.js';
import { registerBench } from './bench.js';
import { registerNvmf } from './nvmf.js';
import { registerNbd } from './nbd.js';
import { registerPool } from './pool.js';
import { registerImage } from './image.js';
import { registerOsd } from './osd.js';
import { registerPg } from './pg.js';
import { registerPolicy } from './policy.js';

export const COMMANDS: readonly ((program: Command) => void)[] = [
  registerStatus,
  registerVhost,
  registerVstart,
  registerBench,
  registerNvmf,
  registerNbd,
  registerPool,
  registerImage,
  registerOsd,
  registerPg,
  registerPolicy,
];

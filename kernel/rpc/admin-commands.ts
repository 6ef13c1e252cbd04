/**
 * Named admin commands, served by the control service's Admin call. Plugins put theirs here
 * (the monitor: "pool create"; vhost: "vhost create"; ...) from register() or start(), and the
 * `fastblock` CLI reaches them with an AdminRequest { command }, the arguments' JSON as its payload.
 *
 * Arguments arrive as parsed JSON from outside the process: a command validates them and throws
 * a FastblockError (INVALID_ARGUMENT, NOT_FOUND, ...) that travels back to the caller whole.
 */
import { ErrorCode, FastblockError, assert } from '../errors.js';

export type AdminArgs = Readonly<Record<string, unknown>>;

export interface AdminCommand {
  /** Words separated by one space, as typed after `fastblock`: "pool create". */
  readonly name: string;
  /** One line for `fastblock status` and help. */
  readonly summary: string;
  /** Returns a JSON-serialisable result. */
  run(args: AdminArgs): unknown;
}

const NAME = /^[a-z][a-z0-9-]*( [a-z][a-z0-9-]*)*$/;

export class AdminCommands {
  private readonly commands = new Map<string, AdminCommand>();

  /** Adds a command; returns the function that removes it (call it from stop()). */
  register(command: AdminCommand): () => void {
    assert(NAME.test(command.name), `admin command name ${JSON.stringify(command.name)} must be lowercase words`);
    if (this.commands.has(command.name)) {
      throw new FastblockError(ErrorCode.ALREADY_EXISTS, `admin command '${command.name}' is already registered`, { command: command.name });
    }
    this.commands.set(command.name, command);
    return () => {
      if (this.commands.get(command.name) === command) this.commands.delete(command.name);
    };
  }

  list(): { name: string; summary: string }[] {
    return [...this.commands.values()].map(({ name, summary }) => ({ name, summary })).sort((a, b) => a.name.localeCompare(b.name));
  }

  async run(name: string, args: AdminArgs): Promise<unknown> {
    const command = this.commands.get(name);
    if (!command) {
      throw new FastblockError(ErrorCode.NOT_FOUND, `no admin command '${name}' on this daemon (it has: ${this.list().map((c) => c.name).join(', ') || 'none'})`, { command: name });
    }
    return await command.run(args);
  }
}

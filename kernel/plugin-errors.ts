/**
 * Every way loading or running plugins can fail, as one-line FastblockErrors (code PLUGIN) that
 * name the plugin and say what to do. The daemon prints the message and exits non-zero.
 */
import { ErrorCode, FastblockError } from './errors.js';

function pluginError(plugin: string, problem: string, fix: string, context: Record<string, unknown> = {}, cause?: unknown): FastblockError {
  return new FastblockError(ErrorCode.PLUGIN, `plugin '${plugin}': ${problem}; ${fix}`, { plugin, fix, ...context }, { cause });
}

export const PluginErrors = {
  unknown(name: string, builtins: readonly string[], searched: readonly string[]): FastblockError {
    return pluginError(
      name,
      `unknown plugin: not a built-in (${builtins.join(', ')}), not an npm package installed under ${searched.join(', ')}, not a path`,
      `fix the name, \`npm install ${name}\`, or give its path (./dir or /abs/plugin.js)`,
      { searched },
    );
  },
  notBuilt(name: string, file: string): FastblockError {
    return pluginError(name, `built-in plugin is missing from this tree (${file})`, 'run `npm run build`, or leave it out of --plugins', { file });
  },
  importFailed(name: string, where: string, cause: unknown): FastblockError {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    return pluginError(name, `failed to load ${where}: ${reason}`, 'reinstall the plugin or fix the error in its module', { where }, cause);
  },
  notAPlugin(name: string, where: string, problem: string): FastblockError {
    return pluginError(
      name,
      `${where} is not a fastblock plugin (${problem})`,
      'its default export must be a PluginManifest { name, kind, version, register } (docs/plugins.md)',
      { where, problem },
    );
  },
  kernelMismatch(name: string, range: string, kernelVersion: string, pluginVersion: string): FastblockError {
    return pluginError(
      name,
      `version ${pluginVersion} needs kernel ${range} but this kernel is ${kernelVersion}`,
      `install a release of '${name}' built for kernel ${kernelVersion}`,
      { range, kernelVersion, pluginVersion },
    );
  },
  duplicateName(name: string, first: string, second: string): FastblockError {
    return pluginError(name, `loaded twice (${first} and ${second})`, 'list each plugin once in --plugins', { first, second });
  },
  duplicateProvider(contract: string, first: string, second: string): FastblockError {
    return pluginError(
      second,
      `provides ${contract}, which plugin '${first}' already provides and only one may`,
      `load either '${first}' or '${second}', not both`,
      { contract, first, second },
    );
  },
  missingRequirement(name: string, contract: string): FastblockError {
    return pluginError(
      name,
      `requires ${contract}, which no loaded plugin provides`,
      `add a plugin that provides ${contract} to --plugins (\`fastblockd --help\` lists them)`,
      { contract },
    );
  },
  cycle(names: readonly string[]): FastblockError {
    return pluginError(names[0] ?? '?', `dependency cycle ${names.join(' -> ')}`, 'these plugins require each other; one of them must not', { cycle: names });
  },
  registerFailed(name: string, cause: unknown): FastblockError {
    // A plugin that refuses on purpose (PLUGIN) already says what to do.
    if (cause instanceof FastblockError && cause.code === ErrorCode.PLUGIN) {
      return new FastblockError(ErrorCode.PLUGIN, `plugin '${name}': ${cause.message}`, { plugin: name, ...cause.context }, { cause });
    }
    const reason = cause instanceof Error ? cause.message : String(cause);
    return pluginError(name, `register() failed: ${reason}`, `fix its configuration section '${name}' or report a bug to its author`, {}, cause);
  },
  startFailed(name: string, cause: unknown, stopped: readonly string[]): FastblockError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return pluginError(
      name,
      `start() failed: ${reason}; stopped ${stopped.length ? stopped.join(', ') : 'nothing (none had started)'}`,
      'fix the cause above and start the daemon again',
      { stopped },
      cause,
    );
  },
  startTimeout(name: string, timeoutMs: number, stopped: readonly string[]): FastblockError {
    return pluginError(
      name,
      `start() did not finish within ${timeoutMs} ms; stopped ${stopped.length ? stopped.join(', ') : 'nothing (none had started)'}`,
      'check what it waits for (a device, a peer), or raise daemon.startTimeoutMs',
      { timeoutMs, stopped },
    );
  },
};

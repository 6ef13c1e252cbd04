/**
 * Checks a set of loaded plugins against each other and orders them so that every plugin comes
 * after the plugins providing what it requires. Ties keep the order given on the command line,
 * so a daemon always starts the same way.
 */
import { SINGLE_PROVIDER_CONTRACTS, type ContractName } from './container.js';
import { KERNEL_CONTRACTS } from './plugin.js';
import { PluginErrors } from './plugin-errors.js';
import type { LoadedPlugin } from './plugin-loader.js';

export function orderPlugins(plugins: readonly LoadedPlugin[]): LoadedPlugin[] {
  const byName = new Map<string, LoadedPlugin>();
  for (const plugin of plugins) {
    const other = byName.get(plugin.manifest.name);
    if (other) throw PluginErrors.duplicateName(plugin.manifest.name, other.requested, plugin.requested);
    byName.set(plugin.manifest.name, plugin);
  }

  const providers = new Map<ContractName, LoadedPlugin[]>();
  for (const plugin of plugins) {
    for (const contract of plugin.manifest.provides ?? []) {
      const list = providers.get(contract) ?? [];
      if (list.length > 0 && SINGLE_PROVIDER_CONTRACTS.includes(contract)) {
        throw PluginErrors.duplicateProvider(contract, list[0]!.manifest.name, plugin.manifest.name);
      }
      list.push(plugin);
      providers.set(contract, list);
    }
  }

  const dependencies = new Map<LoadedPlugin, LoadedPlugin[]>();
  for (const plugin of plugins) {
    const deps: LoadedPlugin[] = [];
    for (const contract of plugin.manifest.requires ?? []) {
      if (KERNEL_CONTRACTS.includes(contract)) continue;
      const list = providers.get(contract);
      if (!list) throw PluginErrors.missingRequirement(plugin.manifest.name, contract);
      for (const provider of list) if (provider !== plugin && !deps.includes(provider)) deps.push(provider);
    }
    dependencies.set(plugin, deps);
  }

  // Depth-first topological sort in command-line order; a grey node met again is a cycle.
  const ordered: LoadedPlugin[] = [];
  const state = new Map<LoadedPlugin, 'visiting' | 'done'>();
  const visit = (plugin: LoadedPlugin, path: LoadedPlugin[]): void => {
    const seen = state.get(plugin);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      const cycle = path.slice(path.indexOf(plugin)).concat(plugin);
      throw PluginErrors.cycle(cycle.map((p) => p.manifest.name));
    }
    state.set(plugin, 'visiting');
    for (const dep of dependencies.get(plugin)!) visit(dep, [...path, plugin]);
    state.set(plugin, 'done');
    ordered.push(plugin);
  };
  for (const plugin of plugins) visit(plugin, []);
  return ordered;
}

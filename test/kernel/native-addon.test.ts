/**
 * Native addons are found from the sources and from the compiled tree: a module under dist/ looks
 * in the source tree's native/ folder at the same path, and each of the three addons loads.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pathToFileURL } from 'node:url';
import { addonCandidates, loadNativeAddon } from '../../kernel/native-addon.js';
import { kernelAddon } from '../../kernel/native.js';
import { native as blobstoreAddon } from '../../plugins/store-blobstore/native.js';
import { vhostNative } from '../../plugins/frontend-vhost/native.js';

test('candidates: beside the module, and for a compiled module the same folder in the source tree', () => {
  assert.equal(addonCandidates(pathToFileURL('/repo/plugins/x/native.ts').href, 'x.node'), ['/repo/plugins/x/native/build/Release/x.node']);
  assert.equal(addonCandidates(pathToFileURL('/repo/dist/plugins/x/native.js').href, 'x.node'), [
    '/repo/dist/plugins/x/native/build/Release/x.node',
    '/repo/plugins/x/native/build/Release/x.node',
  ]);
});

test('a missing addon: undefined, with the first error and where it was looked for', () => {
  const loaded = loadNativeAddon(pathToFileURL('/nowhere/dist/kernel/native.js').href, 'missing.node');
  assert.is(loaded.addon, undefined);
  assert.match(String(loaded.error?.message), /Cannot find module/);
  assert.is(loaded.candidates.length, 2);
});

test('the three addons of the tree load (npm run build built them)', () => {
  assert.ok(kernelAddon, 'kernel_native');
  assert.ok(blobstoreAddon, 'blobstore_native');
  assert.type(vhostNative().memfd, 'function');
});

test.run();

// System packages the build and the test suite use, installed with apt-get when missing.
// One table, so README, CI and the test runner agree on what a fresh machine needs.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** What `npm run build` needs: the blobstore addon compiles against liburing. The README's quick
 * start is `npm ci && npm run build && ...` on a fresh machine, so the build installs these itself. */
export const BUILD_DEPS = [['/usr/include/liburing.h', 'liburing-dev']];

/** [how to tell it is present, Debian package]: the build's, then what the tests drive. */
export const SYSTEM_DEPS = [
  ...BUILD_DEPS,
  ['etcd', 'etcd-server'],
  ['etcdctl', 'etcd-client'],
  ['qemu-img', 'qemu-utils'],
  ['qemu-io', 'qemu-utils'],
  ['nbdinfo', 'libnbd-bin'],
  ['nbdcopy', 'libnbd-bin'],
  ['nbdfuse', 'nbdfuse'],
  ['fusermount3', 'fuse3'],
  ['nbdkit', 'nbdkit'],
  ['fio', 'fio'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['losetup', 'mount'],
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-storage-daemon', 'qemu-system-common'],
  ['/bin/busybox', 'busybox-static'],
  ['nbd-client', 'nbd-client'],
  ['nvme', 'nvme-cli'],
  ['cpio', 'cpio'],
  ['xz', 'xz-utils'],
  ['zstd', 'zstd'],
];

function present(probe) {
  if (probe.startsWith('/')) return existsSync(probe);
  return spawnSync('sh', ['-c', `command -v ${probe} || test -x /usr/sbin/${probe} || test -x /sbin/${probe}`], { stdio: 'ignore' }).status === 0;
}

export function missingPackages(deps = SYSTEM_DEPS) {
  const missing = new Set();
  for (const [probe, pkg] of deps) if (!present(probe)) missing.add(pkg);
  return [...missing];
}

export function ensureSystemPackages(log = console.log, deps = SYSTEM_DEPS) {
  const missing = missingPackages(deps);
  if (missing.length === 0) return;
  log(`[deps] installing missing system packages: ${missing.join(' ')}`);
  const asRoot = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const run = (args) => {
    const [cmd, ...rest] = [...asRoot, ...args];
    execFileSync(cmd, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  run(['apt-get', 'update', '-qq']);
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing]);
  const still = missingPackages(deps);
  if (still.length) throw new Error(`system packages still missing after apt-get: ${still.join(' ')}`);
}

if (import.meta.url === `file://${process.argv[1]}`) ensureSystemPackages();

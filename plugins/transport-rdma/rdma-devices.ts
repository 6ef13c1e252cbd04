/** RDMA devices as the kernel lists them: one entry per device under /sys/class/infiniband. */
import { existsSync, readdirSync } from 'node:fs';

export const INFINIBAND_CLASS = '/sys/class/infiniband';

export function rdmaDevices(root = INFINIBAND_CLASS): string[] {
  return existsSync(root) ? readdirSync(root).sort() : [];
}

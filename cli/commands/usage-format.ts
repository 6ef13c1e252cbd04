/** Store space as a person reads it: binary units, one decimal, and how full. */
import { wholePercent } from '../../services/monitor/capacity.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export function percentFull(usedBytes: number, capacityBytes: number): string {
  return capacityBytes > 0 ? `${wholePercent(usedBytes / capacityBytes)}%` : '-';
}

export function formatUsage(usage: { readonly usedBytes: number; readonly capacityBytes: number }): string {
  return `${formatBytes(usage.usedBytes)} used of ${formatBytes(usage.capacityBytes)} (${percentFull(usage.usedBytes, usage.capacityBytes)})`;
}

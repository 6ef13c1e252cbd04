/**
 * The QEMU command-line options that attach a vhost-user-blk controller's socket to a VM, for
 * operators (`fastblock vhost create`, vstart) to print. Guest RAM must be a shared memory backend:
 * the back-end maps it.
 */
export function qemuOptions(socket: string, options: { queues?: number; memory?: string; id?: string } = {}): string {
  const id = options.id ?? 'fastblock0';
  return [
    `-object memory-backend-memfd,id=mem0,size=${options.memory ?? '<guest RAM, e.g. 4G>'},share=on -machine memory-backend=mem0`,
    `-chardev socket,id=${id},path=${socket},reconnect=1`,
    `-device vhost-user-blk-pci,chardev=${id}${options.queues ? `,num-queues=${options.queues}` : ''}`,
  ].join(' ');
}

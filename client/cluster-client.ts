/**
 * The client of one cluster: keeps the cluster map fresh, routes object I/O, opens images.
 * It is also a BlockVolumeProvider, so frontends (NBD, vhost, NVMe/TCP) serve its images directly.
 */
import type { BlockVolumeProvider } from '../kernel/contracts/block.js';
import type { ClusterMap, ImageInfo } from '../kernel/contracts/cluster-map.js';
import type { Transport } from '../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { Image } from './image.js';
import type { ImageWatchRegistry } from './image-watch.js';
import { InFlightLimit } from './in-flight-limit.js';
import type { ClusterMapSource } from './map-source.js';
import { DEFAULT_RETRY_POLICY, ObjectIo, type RetryPolicy } from './object-io.js';
import { PgRouter } from './pg-router.js';

export interface ClientOptions {
  /** Object I/Os one image keeps in flight; more wait their turn. */
  readonly maxInFlight?: number;
  readonly retry?: Partial<RetryPolicy>;
}

export class ClusterClient implements BlockVolumeProvider {
  readonly router: PgRouter;
  readonly io: ObjectIo;
  private readonly images = new Set<Image>();
  private closed = false;
  /** Images by id in the map they were indexed from (rebuilt when a newer map arrives). */
  private indexedMap: ClusterMap | undefined;
  private imagesById = new Map<string, ImageInfo>();

  constructor(
    private readonly transport: Transport,
    readonly maps: ClusterMapSource,
    private readonly options: ClientOptions = {},
    /** Called by close(): releases what the client was given to own (its transport, its map subscription). */
    private readonly release: () => Promise<void> = async () => undefined,
    /** Where open images are registered as watched, so they are not removed under us (none: a fixed map, in tests). */
    private readonly watches?: ImageWatchRegistry,
  ) {
    this.router = new PgRouter(maps.current());
    this.io = new ObjectIo(transport, this.router, maps, { ...DEFAULT_RETRY_POLICY, ...options.retry });
  }

  /** Finds an image by "pool/name" in the newest map. */
  async imageInfo(spec: string): Promise<ImageInfo> {
    const slash = spec.indexOf('/');
    if (slash <= 0 || slash === spec.length - 1) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `image name "${spec}" is not of the form pool/image`, { spec });
    }
    const poolName = spec.slice(0, slash);
    const imageName = spec.slice(slash + 1);
    const find = () => {
      const map = this.maps.current();
      this.router.setMap(map);
      const pool = map.pools.find((p) => p.name === poolName);
      return pool && map.images.find((i) => i.pool === pool.id && i.name === imageName);
    };
    const info = find() ?? (await this.maps.refresh(), find());
    if (!info) throw new FastblockError(ErrorCode.NOT_FOUND, `no image ${spec} in the cluster map (epoch ${this.maps.current().epoch})`, { spec });
    return info;
  }

  async openImage(spec: string): Promise<Image> {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, 'client is closed', {});
    const info = await this.imageInfo(spec);
    const watch = this.watches?.watch(info, spec.slice(0, spec.indexOf('/')));
    const image: Image = new Image(
      spec,
      info,
      this.io,
      new InFlightLimit(this.options.maxInFlight ?? 128),
      async () => {
        this.images.delete(image);
        await watch?.close();
      },
      () => this.latestInfo(info.id),
    );
    this.images.add(image);
    return image;
  }

  /** The image as the newest map describes it: how a resize reaches images already open. */
  private latestInfo(id: string): ImageInfo | undefined {
    const map = this.maps.current();
    if (map !== this.indexedMap) {
      this.indexedMap = map;
      this.imagesById = new Map(map.images.map((i) => [i.id, i]));
    }
    return this.imagesById.get(id);
  }

  /** BlockVolumeProvider. */
  open(name: string): Promise<Image> {
    return this.openImage(name);
  }

  async list(): Promise<string[]> {
    const map = this.maps.current();
    const pools = new Map(map.pools.map((p) => [p.id, p.name]));
    return map.images.map((i) => `${pools.get(i.pool) ?? i.pool}/${i.name}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.images].map((image) => image.close()));
    await this.maps.close();
    await this.release();
    void this.transport;
  }
}

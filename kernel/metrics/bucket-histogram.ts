/**
 * A Prometheus histogram whose bucket counts are kept elsewhere, in plain numbers, and read when
 * the registry is scraped: the shape a hot path can afford (an OSD shard thread counts into a
 * Float64Array; the main thread adds the shards' copies up). prom-client's Histogram only learns
 * through observe(), one sample at a time with a label hash each; this subclass keeps its name,
 * type and registration and answers with the counts `read` returns.
 */
import { Histogram, type LabelValues, type MetricObjectWithValues, type MetricType, type MetricValueWithName, type Registry } from 'prom-client';
import { assert } from '../errors.js';

// prom-client's typings declare MetricType as a numeric enum; at run time (and in the text format)
// the type is the string.
const HISTOGRAM = 'histogram' as unknown as MetricType;

export interface BucketCounts<T extends string> {
  readonly labels: LabelValues<T>;
  /** Observations per bucket, not cumulative: one per bound, then the +Inf bucket. */
  readonly counts: ArrayLike<number>;
  /** Sum of the observed values. */
  readonly sum: number;
}

export interface BucketHistogramConfig<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly T[];
  /** Upper bounds, ascending (+Inf implied). */
  readonly bounds: readonly number[];
  readonly registers: Registry[];
  readonly read: () => Promise<Iterable<BucketCounts<T>>> | Iterable<BucketCounts<T>>;
}


export class BucketHistogram<T extends string> extends Histogram<T> {
  private readonly bounds: readonly number[];
  private readonly metricName: string;
  private readonly helpText: string;
  private readonly read: BucketHistogramConfig<T>['read'];

  constructor(config: BucketHistogramConfig<T>) {
    super({ name: config.name, help: config.help, labelNames: config.labelNames, buckets: [...config.bounds], registers: config.registers });
    this.bounds = config.bounds;
    this.metricName = config.name;
    this.helpText = config.help;
    this.read = config.read;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    return await this.getForPromString();
  }

  /** What the registry calls to render text (prom-client's Histogram has it; so must we). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<T>>> {
    // `le` is a label of the bucket series only; prom-client's types know no such per-series label.
    const values: MetricValueWithName<string>[] = [];
    const name = this.metricName;
    for (const { labels, counts, sum } of await this.read()) {
      assert(counts.length === this.bounds.length + 1, `${name}: one count per bound plus +Inf, got ${counts.length}`);
      let cumulative = 0;
      for (let i = 0; i < counts.length; i++) {
        cumulative += counts[i];
        const le = i < this.bounds.length ? this.bounds[i] : '+Inf';
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
      }
      values.push({ metricName: `${name}_sum`, labels, value: sum });
      values.push({ metricName: `${name}_count`, labels, value: cumulative });
    }
    return { name, help: this.helpText, type: HISTOGRAM, values: values as MetricValueWithName<T>[], aggregator: 'sum', collect: () => undefined };
  }
}

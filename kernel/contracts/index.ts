export type * from './transport.js';
export type * from './store.js';
export type * from './block.js';
export type * from './frontend.js';
export type * from './cluster-map.js';
export type * from './policy.js';
export type * from './meta-store.js';
export type * from './metrics.js';

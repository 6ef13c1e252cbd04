/**
 * The slice of the WebAssembly JS API the host uses, typed here because the project's lib setting
 * (ES2023, no DOM) does not declare it; Node provides the global at run time.
 */
export interface WasmModule {
  readonly __brand: 'WebAssembly.Module';
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

export interface WasmImportDescriptor {
  readonly module: string;
  readonly name: string;
  readonly kind: string;
}

export interface WasmExportDescriptor {
  readonly name: string;
  readonly kind: string;
}

export interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: {
    new (bytes: Uint8Array): WasmModule;
    imports(module: WasmModule): WasmImportDescriptor[];
    exports(module: WasmModule): WasmExportDescriptor[];
  };
}

export const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

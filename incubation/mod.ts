/**
 * `@mfi/incubation` (in progress).
 *
 * @module
 */
export {};

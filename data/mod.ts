/**
 * `@mfi/data` (in progress).
 *
 * @module
 */
export {};

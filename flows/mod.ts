/**
 * `@mfi/flows` (in progress).
 *
 * @module
 */
export {};

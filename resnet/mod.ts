/**
 * `@mfi/resnet` (in progress).
 *
 * @module
 */
export {};

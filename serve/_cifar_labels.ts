/**
 * Label names and input normalisation of CIFAR-10/100, the defaults of a bundle exported from a
 * checkpoint. Names are those of the official `batches.meta.txt` and `fine_label_names.txt`
 * (checked against the files in `checkpoint_bundle_test.ts`); mean/std from `@mfi/data`'s `CIFAR_SPECS`.
 *
 * @module
 */
import { CIFAR_CLASS_NAMES, CIFAR_SPECS } from "@mfi/data";
import type { Normalization } from "./bundle.ts";

/** The datasets with built-in labels. */
export type LabelledDataset = "cifar10" | "cifar100";

/** Class names in label order. */
export const CLASS_NAMES: Readonly<Record<LabelledDataset, readonly string[]>> = CIFAR_CLASS_NAMES;

/** Per-channel normalisation of each dataset's training images (the data package's published values). */
export const NORMALIZATION: Readonly<Record<LabelledDataset, Normalization>> = Object.freeze({
  cifar10: Object.freeze({ mean: CIFAR_SPECS.cifar10.mean, std: CIFAR_SPECS.cifar10.std }),
  cifar100: Object.freeze({ mean: CIFAR_SPECS.cifar100.mean, std: CIFAR_SPECS.cifar100.std }),
});

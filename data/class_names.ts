/**
 * Class names of CIFAR-10 and CIFAR-100 (fine labels) in label order, as in the official
 * `batches.meta.txt` and `fine_label_names.txt`, for code that has no data files at hand (model
 * bundles, servers, tests). Readers of the data files use the files' own names.
 *
 * @module
 */
import type { CifarDataset } from "./spec.ts";

/**
 * Class names in label order, per dataset (CIFAR-100: fine labels).
 *
 * @example
 * ```ts
 * import { CIFAR_CLASS_NAMES } from "@mfi/data";
 * import assert from "node:assert/strict";
 * assert.equal(CIFAR_CLASS_NAMES.cifar10[3], "cat");
 * assert.equal(CIFAR_CLASS_NAMES.cifar100.length, 100);
 * ```
 */
export const CIFAR_CLASS_NAMES: Readonly<Record<CifarDataset, readonly string[]>> = Object.freeze({
  cifar10: Object.freeze([
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
  ]),
  cifar100: Object.freeze(
    ("apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus " +
      "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch " +
      "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo " +
      "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse " +
      "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy " +
      "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper " +
      "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television " +
      "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split(
        " ",
      ),
  ),
});

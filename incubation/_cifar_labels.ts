/**
 * Label names and input normalisation of CIFAR-10/100, the defaults of a bundle exported from a
 * checkpoint. Names are those of the official `batches.meta.txt` and `fine_label_names.txt`
 * (checked against the files in `checkpoint_bundle_test.ts`); mean/std from `@mfi/data`'s `CIFAR_SPECS`.
 *
 * @module
 */
import { CIFAR_SPECS } from "@mfi/data";
import type { Normalization } from "./bundle.ts";

/** The datasets with built-in labels. */
export type LabelledDataset = "cifar10" | "cifar100";

/** Class names in label order. */
export const CLASS_NAMES: Readonly<Record<LabelledDataset, readonly string[]>> = Object.freeze({
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

/** Per-channel normalisation of each dataset's training images (the data package's published values). */
export const NORMALIZATION: Readonly<Record<LabelledDataset, Normalization>> = Object.freeze({
  cifar10: Object.freeze({ mean: CIFAR_SPECS.cifar10.mean, std: CIFAR_SPECS.cifar10.std }),
  cifar100: Object.freeze({ mean: CIFAR_SPECS.cifar100.mean, std: CIFAR_SPECS.cifar100.std }),
});

/**
 * `deno task reproduce`: the whole MFI-ResNet pipeline (baseline, compression, incubation,
 * fine-tuning, report). Until the pipeline lands this prints the plan and exits non-zero.
 *
 * @module
 */
console.error(
  [
    "MFI-ResNet reproduce: the pipeline is not implemented yet.",
    "It will: 1) train a CIFAR ResNet-50 baseline at reduced width, 2) compress each stage into",
    "MeanFlow modules (meta model), 3) incubate stages 1-3 with residual blocks, 4) fine-tune,",
    "and write results.md/results.json. Track progress in the project's issues.",
  ].join("\n"),
);
Deno.exit(2);

"""The training library behind `python -m lapsrn_jax.train` (one job per module).

- `config`: the base config (the official MS-LapSRN recipe) and `validate_config`.
- `losses`: Charbonnier pyramid loss, summed over pixels and levels, divided by the batch.
- `optimizer`: optax SGD-momentum / Adam with the step-decay schedule, coupled weight decay and the
  bias learning-rate multiplier.
- `state`: `TrainState` (step, params, optimiser state).
- `sharding`: the `('data',)` mesh, batch placement (per-scale chunks padded to the device count).
- `step`: the jitted training step (loss, grads, update, finite check).
- `initialization`: parameter init (random or from official / our own weights).
- `validation`: jitted PSNR/SSIM on fixed-size validation crops, next to bicubic.
- `checkpointing`: orbax CheckpointManager (latest N + best), resume (reading a trained model
  is `lapsrn_jax.workdir.load_trained`).
- `metric_writer`: metrics as JSON lines and TensorBoard events.
"""

"""nanoGPT's Shakespeare CPU recipe, the model and training settings the step benchmarks share
(train_step.py, memory.py, shakespeare.py's checks): tiny on purpose, so that memory.py can
import it before it measures what its imports cost."""

VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF, BATCH = 65, 64, 4, 4, 128, 512, 12
LR, BETAS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0
